from __future__ import annotations

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    pg_admin_dsn,
    pytest_configure,
)
