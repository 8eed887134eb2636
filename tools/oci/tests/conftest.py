from __future__ import annotations

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    enable_asyncio_auto_mode,
    pg_admin_dsn,
)


def pytest_configure(config: pytest.Config) -> None:
    enable_asyncio_auto_mode(config)
