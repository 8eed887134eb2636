from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from auth.v1 import auth_pb2_grpc
from libs.platform import emails
from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    database_url,
    new_database,
    pg_admin_dsn,
    pytest_configure,
    serve_fake,
)
from libs.platform.testing.security import ServiceKeys, report_hostile
from libs.platform.testing.topology import settings
from services.authsvc import app
from services.authsvc.config import Settings
from user.v1 import user_pb2, user_pb2_grpc


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    credentials_version: int = 1


@dataclass
class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """Stands in for usersvc: accounts by canonical email, as usersvc looks them up."""

    accounts: dict[str, Account] = field(default_factory=dict)
    authorizations: list[str] = field(default_factory=list)
    requests: list[user_pb2.VerifyCredentialsRequest] = field(default_factory=list)
    outage: bool = False
    delay_seconds: float = 0.0

    def add(self, email: str, password: str) -> str:
        user_id = str(uuid.uuid4())
        self.accounts[emails.canonical(email)] = Account(user_id, email, password)
        return user_id

    def change_password(self, email: str, password: str) -> None:
        account = self.accounts[emails.canonical(email)]
        account.password = password
        account.credentials_version += 1

    async def VerifyCredentials(self, request, context):
        self.authorizations.append(dict(context.invocation_metadata()).get("authorization", ""))
        self.requests.append(request)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.outage:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "usersvc is restarting")
        found = self.accounts.get(emails.canonical(request.email))
        if found is None or found.password != request.password:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid email or password")
        return user_pb2.VerifyCredentialsResponse(
            user_id=found.user_id,
            email=found.email,
            credentials_version=found.credentials_version,
        )


@pytest.fixture
async def fake_users() -> AsyncIterator[tuple[FakeUsers, int]]:
    servicer = FakeUsers()
    async with serve_fake(user_pb2_grpc.add_UserServiceServicer_to_server, servicer) as port:
        yield servicer, port


@pytest.fixture
def users(fake_users: tuple[FakeUsers, int]) -> FakeUsers:
    return fake_users[0]


@pytest.fixture(scope="session")
def service_keys(tmp_path_factory) -> ServiceKeys:
    """authsvc's own key, and the callers it trusts: usersvc (and paymentsvc, which may not
    call RevokeUserSessions); `rogue` is not trusted."""
    keys = ServiceKeys(tmp_path_factory.mktemp("service-keys"))
    keys.add("authsvc", trusted=False)
    keys.add("usersvc")
    keys.add("paymentsvc")
    keys.add("rogue", trusted=False)
    return keys


@pytest.fixture(scope="session")
def service_key_file(service_keys: ServiceKeys) -> str:
    return service_keys.key_file("authsvc")


def make_settings(database_url: str, users_port: int, **kw: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "grpc_port": 0,
        "grpc_host": "127.0.0.1",
        "usersvc_addr": f"127.0.0.1:{users_port}",
        "usersvc_timeout_seconds": 0.5,
    }
    return settings(Settings, {**values, **kw})


@pytest.fixture
async def authsvc(
    database_url: str, fake_users, service_key_file, service_keys
) -> AsyncIterator[app.AuthApp]:
    running = await app.start(
        make_settings(
            database_url,
            fake_users[1],
            service_key_file=service_key_file,
            trusted_service_keys=str(service_keys.trusted_dir),
        )
    )
    yield running
    await running.stop(0)


@pytest.fixture
async def stub(authsvc: app.AuthApp) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}") as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


def pytest_terminal_summary(terminalreporter) -> None:
    report_hostile(terminalreporter)
