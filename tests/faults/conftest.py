from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    new_database,
    pg_admin_dsn,
    pytest_configure,
)
from tests.faults.system import Credentials


@pytest.fixture
def creds(tmp_path: Path) -> Iterator[Credentials]:
    yield Credentials.create(tmp_path / "keys")
