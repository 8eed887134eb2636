from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    database_url,
    jwks,
    new_database,
    pg_admin_dsn,
    pytest_configure,
    serve_fake,
)
from libs.platform.testing.security import ServiceKeys, report_hostile
from payment.v1 import payment_pb2_grpc
from services.paymentsvc import app
from services.paymentsvc.config import Settings
from user.v1 import user_pb2, user_pb2_grpc


@dataclass
class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """Stands in for usersvc so these tests control which users exist and its latency."""

    known: set[str] = field(default_factory=set)
    delay: float = 0.0
    calls: int = 0
    # The authorization metadata of each call, to check paymentsvc sends its service token.
    authorizations: list[str] = field(default_factory=list)

    def add(self) -> str:
        user_id = str(uuid.uuid4())
        self.known.add(user_id)
        return user_id

    # False plays a usersvc from before BatchGetUsers existed.
    batch: bool = True
    # The number of ids in each BatchGetUsers call.
    batch_sizes: list[int] = field(default_factory=list)
    # When set, calls wait for it; `entered` is set once one does.
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def _called(self, context) -> None:
        self.calls += 1
        self.authorizations.append(dict(context.invocation_metadata()).get("authorization", ""))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)

    async def GetUser(self, request, context):
        await self._called(context)
        if request.user_id not in self.known:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return user_pb2.GetUserResponse(user_id=request.user_id, email="x@example.com")

    async def BatchGetUsers(self, request, context):
        if not self.batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        await self._called(context)
        self.batch_sizes.append(len(request.user_ids))
        if any(u not in self.known for u in request.user_ids):
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return user_pb2.BatchGetUsersResponse(
            users=[user_pb2.User(user_id=u) for u in request.user_ids]
        )


@pytest.fixture
async def fake_users() -> AsyncIterator[tuple[FakeUsers, int]]:
    servicer = FakeUsers()
    async with serve_fake(user_pb2_grpc.add_UserServiceServicer_to_server, servicer) as port:
        yield servicer, port


@pytest.fixture
def users(fake_users: tuple[FakeUsers, int]) -> FakeUsers:
    return fake_users[0]


@pytest.fixture
def service_keys(tmp_path) -> ServiceKeys:
    keys = ServiceKeys(tmp_path)
    keys.add("paymentsvc", trusted=False)  # its own key: usersvc trusts it, not paymentsvc
    keys.add("opsctl")  # an operator tool: a service identity that paymentsvc trusts
    return keys


def make_settings(database_url: str, users_port: int, jwks_port: int, keys: ServiceKeys):
    return Settings(
        database_url=database_url,
        grpc_port=0,
        grpc_host="127.0.0.1",
        usersvc_addr=f"127.0.0.1:{users_port}",
        usersvc_timeout_seconds=0.5,
        token_issuer_addr=f"127.0.0.1:{jwks_port}",
        service_key_file=keys.key_file("paymentsvc"),
        trusted_service_keys=str(keys.trusted_dir),
        jwks_min_refresh_seconds=0.0,
    )


@pytest.fixture
async def paymentsvc(
    database_url: str, fake_users, jwks, service_keys
) -> AsyncIterator[app.PaymentApp]:
    running = await app.start(make_settings(database_url, fake_users[1], jwks.port, service_keys))
    yield running
    await running.stop(0)


@pytest.fixture
async def stub(
    paymentsvc: app.PaymentApp, service_keys
) -> AsyncIterator[payment_pb2_grpc.PaymentServiceStub]:
    """Calls as the trusted `opsctl` service, which may act for any user."""
    async with service_keys.channel(
        paymentsvc.port, caller="opsctl", audience="paymentsvc"
    ) as channel:
        yield payment_pb2_grpc.PaymentServiceStub(channel)


@pytest.fixture
async def anon_channel(paymentsvc: app.PaymentApp) -> AsyncIterator[grpc.aio.Channel]:
    """A plain channel: calls carry only the metadata each test gives them."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{paymentsvc.port}") as channel:
        yield channel


@pytest.fixture
def anon(anon_channel: grpc.aio.Channel) -> payment_pb2_grpc.PaymentServiceAsyncStub:
    return payment_pb2_grpc.PaymentServiceStub(anon_channel)


def pytest_terminal_summary(terminalreporter) -> None:
    report_hostile(terminalreporter)
