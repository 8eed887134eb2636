from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    enable_asyncio_auto_mode,
    new_database,
    pg_admin_dsn,
)
from tests.faults.system import Credentials


def pytest_configure(config: pytest.Config) -> None:
    enable_asyncio_auto_mode(config)


@pytest.fixture
def creds(tmp_path: Path) -> Iterator[Credentials]:
    yield Credentials.create(tmp_path / "keys")
