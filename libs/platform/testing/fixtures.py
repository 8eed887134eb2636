"""pytest fixtures; import the ones you need in conftest.py.

`pg_admin_dsn` is session-wide (one cluster per test run); `database_url` is a fresh,
empty database per test, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from libs.platform.testing.postgres import PostgresCluster, create_database, drop_database


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    external = os.environ.get("MICRO_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with PostgresCluster() as cluster:
        yield cluster.admin_dsn


@pytest.fixture
async def new_database(pg_admin_dsn: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory for throwaway databases; all are dropped at the end of the test."""
    created: list[str] = []

    async def make() -> str:
        dsn = await create_database(pg_admin_dsn)
        created.append(dsn)
        return dsn

    yield make
    for dsn in created:
        await drop_database(pg_admin_dsn, dsn)


@pytest.fixture
async def database_url(new_database: Callable[[], Awaitable[str]]) -> str:
    return await new_database()


def enable_asyncio_auto_mode(config: pytest.Config) -> None:
    """Call from a conftest's pytest_configure: async tests/fixtures need no decorators."""
    config.option.asyncio_mode = "auto"
