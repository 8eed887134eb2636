from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    new_database,
    pg_admin_dsn,
    pytest_configure,
)
from tests.faults.system import FaultSystem


@pytest.fixture
async def faults(tmp_path: Path) -> AsyncIterator[FaultSystem]:
    system = FaultSystem.wire(tmp_path / "keys")
    try:
        yield system
    finally:
        if system.issuer is not None:
            await system.issuer.stop()
