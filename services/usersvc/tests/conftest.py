from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    database_url,
    enable_asyncio_auto_mode,
    new_database,
    pg_admin_dsn,
)
from services.usersvc import app
from services.usersvc.config import Settings
from user.v1 import user_pb2_grpc


def pytest_configure(config: pytest.Config) -> None:
    enable_asyncio_auto_mode(config)


def make_settings(database_url: str) -> Settings:
    # Cheap argon2 parameters keep the suite fast; production uses argon2-cffi defaults.
    return Settings(
        database_url=database_url,
        grpc_port=0,
        grpc_host="127.0.0.1",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )


@pytest.fixture
async def usersvc(database_url: str) -> AsyncIterator[app.UserApp]:
    running = await app.start(make_settings(database_url))
    yield running
    await running.stop(0)


@pytest.fixture
async def stub(usersvc: app.UserApp) -> AsyncIterator[user_pb2_grpc.UserServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{usersvc.port}") as channel:
        yield user_pb2_grpc.UserServiceStub(channel)
