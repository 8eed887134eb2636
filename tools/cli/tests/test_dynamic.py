"""`microctl call`: any method of a running service, by name, through server reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import json_format

from auth.v1 import auth_pb2_grpc
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from libs.platform.testing.security import FakeJwksServer
from tools.cli import dynamic


@pytest.fixture
async def server() -> AsyncIterator[tuple[GrpcServer, FakeJwksServer]]:
    """A platform server (reflection on, as every service has it) with a small servicer."""
    servicer = FakeJwksServer()
    kid = servicer.rotate()
    running = await start_server(
        [
            ServiceRegistration(
                "auth.v1.AuthService", auth_pb2_grpc.add_AuthServiceServicer_to_server, servicer
            )
        ],
        host="127.0.0.1",
    )
    servicer.active = kid
    yield running, servicer
    await running.stop(0)


def _call(port: int, method: str, body: str = "{}") -> dict:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = dynamic.call(ch, method, body, timeout=5)
    return json_format.MessageToDict(reply, preserving_proto_field_name=True)


async def test_a_method_is_called_with_json_from_its_name_alone(server) -> None:
    running, servicer = server
    # The blocking client in a thread: the server shares this test's event loop.
    reply = await asyncio.to_thread(_call, running.port, "auth.v1.AuthService/GetJwks")
    assert [k["kid"] for k in reply["keys"]] == [servicer.active]
    health = await asyncio.to_thread(
        _call, running.port, "grpc.health.v1.Health/Check", '{"service": "auth.v1.AuthService"}'
    )
    assert health == {"status": "SERVING"}


@pytest.mark.parametrize(
    "method", ["auth.v1.AuthService/NoSuchMethod", "no.v1.Such/Thing", "GetJwks"]
)
async def test_an_unknown_method_is_named_in_the_error(server, method: str) -> None:
    running, _ = server
    with pytest.raises(dynamic.UnknownMethodError):
        await asyncio.to_thread(_call, running.port, method)


async def test_a_request_that_is_not_the_methods_json_is_refused(server) -> None:
    running, _ = server
    with pytest.raises(json_format.ParseError):
        await asyncio.to_thread(
            _call, running.port, "grpc.health.v1.Health/Check", '{"no_such_field": 1}'
        )
