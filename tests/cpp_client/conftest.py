from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    new_database,
    pg_admin_dsn,
    pytest_configure,
)
from tests.e2e.system import System, running_system


@pytest.fixture
async def system(new_database, tmp_path) -> AsyncIterator[System]:
    async with running_system(new_database, tmp_path) as running:
        yield running
