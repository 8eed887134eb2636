"""Request ids and traces cross the authsvc -> usersvc hop of a real Login."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from auth.v1 import auth_pb2, auth_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from tests.faults.system import CHEAP_ARGON2, FaultSystem
from user.v1 import user_pb2, user_pb2_grpc

LOGIN = "/auth.v1.AuthService/Login"
VERIFY = "/user.v1.UserService/VerifyCredentials"
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    # The global provider can be set once per process; this module owns it.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
async def login(new_database, faults: FaultSystem) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    users = await userapp.start(
        faults.settings(UserSettings, "usersvc", database_url=await new_database(), **CHEAP_ARGON2)
    )
    auth = await authapp.start(
        faults.settings(
            AuthSettings,
            "authsvc",
            database_url=await new_database(),
            usersvc_timeout_seconds=1.0,
        )
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{users.port}") as uch:
            await user_pb2_grpc.UserServiceStub(uch).CreateUser(
                user_pb2.CreateUserRequest(email="obs@example.com", password="correct horse")
            )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{auth.port}") as ach:
            yield auth_pb2_grpc.AuthServiceStub(ach)
    finally:
        await auth.stop(0)
        await users.stop(0)


REQUEST = auth_pb2.LoginRequest(email="obs@example.com", password="correct horse")


def rpc_lines(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The rpc log lines by method; their fields (request_id, code) are record attributes."""
    return {
        r.__dict__["method"]: r
        for r in caplog.records
        if r.name == "rpc" and r.getMessage() == "rpc"
    }


async def test_request_id_is_carried_to_usersvc(login, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="rpc"):
        await login.Login(REQUEST, metadata=[("x-request-id", "req-hop-1")])
    lines = rpc_lines(caplog)
    assert lines[LOGIN].request_id == "req-hop-1"
    assert lines[VERIFY].request_id == "req-hop-1"
    assert lines[VERIFY].code == "OK"


async def test_generated_request_id_is_carried_too(login, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="rpc"):
        await login.Login(REQUEST)
    lines = rpc_lines(caplog)
    assert len(lines[LOGIN].request_id) == 32
    assert lines[VERIFY].request_id == lines[LOGIN].request_id


async def test_one_trace_spans_authsvc_and_usersvc(login) -> None:
    EXPORTER.clear()
    await login.Login(REQUEST)
    spans = EXPORTER.get_finished_spans()
    by_kind = {(s.name, s.kind): s for s in spans}
    auth_server = by_kind[(LOGIN, SpanKind.SERVER)]
    client = by_kind[(VERIFY, SpanKind.CLIENT)]
    users_server = by_kind[(VERIFY, SpanKind.SERVER)]
    trace_ids = {s.context.trace_id for s in (auth_server, client, users_server)}
    assert len(trace_ids) == 1
    assert auth_server.parent is None
    assert client.parent.span_id == auth_server.context.span_id
    assert users_server.parent.span_id == client.context.span_id
    assert users_server.attributes["rpc.grpc.status_code"] == 0
    assert auth_server.attributes["rpc.method"] == "Login"
