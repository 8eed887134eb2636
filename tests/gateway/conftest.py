from __future__ import annotations

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    new_database,
    pg_admin_dsn,
    pytest_configure,
)
from tests.e2e.system import system  # noqa: F401 - pytest fixture
