"""pytest fixtures; import the ones you need in conftest.py.

`pg_admin_dsn` is session-wide (one cluster per test run); `database_url` is a fresh,
empty database per test, dropped afterwards. Importing `pytest_configure` into a conftest
makes it that conftest's hook.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from libs.platform.testing.postgres import PostgresCluster, create_database, drop_database
from libs.platform.testing.security import FakeJwksServer


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


@pytest.fixture
async def jwks() -> AsyncIterator[FakeJwksServer]:
    """A JWKS endpoint with one active key, for services that verify user tokens."""
    server = FakeJwksServer()
    server.rotate()
    await server.start()
    yield server
    await server.stop()


@asynccontextmanager
async def serve_fake(
    add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any
) -> AsyncIterator[int]:
    """Serve a stand-in for another service on a free loopback port; yields the port."""
    server = grpc.aio.server()
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def pytest_configure(config: pytest.Config) -> None:
    # pytest.ini says the same, but a run with another ini (MICRO_PYTEST_INI) must not turn
    # every async test into a silently skipped one.
    config.option.asyncio_mode = "auto"
