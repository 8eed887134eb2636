from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    database_url,
    jwks,
    new_database,
    pg_admin_dsn,
    pytest_configure,
)
from libs.platform.testing.security import ServiceKeys, report_hostile
from libs.platform.testing.topology import settings
from services.usersvc import app
from services.usersvc.config import Settings
from user.v1 import user_pb2_grpc


def make_settings(database_url: str, jwks_port: int, trusted: str, **kw: object) -> Settings:
    # Cheap argon2 parameters keep the suite fast; production uses argon2-cffi defaults.
    # Sign-ups are not rate limited here (the suite signs many users up from one address)
    # except where a test sets the limit; revocations are retried quickly.
    values: dict[str, object] = {
        "signup_burst": 100000,
        "session_revocation_retry_seconds": 0.2,
        "database_url": database_url,
        "grpc_port": 0,
        "grpc_host": "127.0.0.1",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "token_issuer_addr": f"127.0.0.1:{jwks_port}",
        "trusted_service_keys": trusted,
        "jwks_min_refresh_seconds": 0.0,
    }
    return settings(Settings, {**values, **kw})


@pytest.fixture
def service_keys(tmp_path) -> ServiceKeys:
    keys = ServiceKeys(tmp_path)
    keys.add("authsvc")
    keys.add("paymentsvc")
    keys.add("rogue", trusted=False)
    # usersvc's own key, for its calls to authsvc (RevokeUserSessions).
    keys.add("usersvc", trusted=False)
    return keys


@pytest.fixture
async def usersvc(database_url: str, jwks, service_keys) -> AsyncIterator[app.UserApp]:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        service_key_file=service_keys.key_file("usersvc"),
    )
    running = await app.start(settings)
    yield running
    await running.stop(0)


@pytest.fixture
async def stub(usersvc: app.UserApp, service_keys) -> AsyncIterator[user_pb2_grpc.UserServiceStub]:
    """Calls as the authsvc service, which may use every method (VerifyCredentials too)."""
    async with service_keys.channel(usersvc.port, caller="authsvc", audience="usersvc") as channel:
        yield user_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
async def anon(usersvc: app.UserApp) -> AsyncIterator[user_pb2_grpc.UserServiceStub]:
    """No credentials: pass metadata per call to act as a particular user."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{usersvc.port}") as channel:
        yield user_pb2_grpc.UserServiceStub(channel)


def pytest_terminal_summary(terminalreporter) -> None:
    report_hostile(terminalreporter)
