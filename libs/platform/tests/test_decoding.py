"""Request bytes that do not parse, sent by hand over real gRPC to start_server's server."""

from __future__ import annotations

import grpc
import pytest

from libs.platform.decoding import describe
from libs.platform.server import ServiceRegistration, start_server
from libs.platform.testing import wire
from libs.platform.testing.grpc_errors import field_violations
from user.v1 import user_pb2, user_pb2_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_UTF8 = b"caf\xe9"  # Latin-1 e-acute
GET_USER = "/user.v1.UserService/GetUser"


class Toy(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def GetUser(self, request, context):
        self.calls += 1
        return user_pb2.GetUserResponse(user_id=request.user_id)


@pytest.fixture
async def served():
    toy = Toy()
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, toy
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel, server, toy
    await server.stop(0)


async def rejected(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def no_internals(err: grpc.aio.AioRpcError) -> bool:
    details = (err.details() or "").lower()
    return not any(w in details for w in ("unexpected", "decodeerror", "error parsing", "<class"))


async def test_unary_request_with_invalid_utf8_names_the_field(served) -> None:
    channel, server, toy = served
    err = await rejected(wire.raw_unary(channel, GET_USER, wire.length_delimited(1, NOT_UTF8)))
    assert err.code() == INVALID
    assert field_violations(err) == {"user_id": "must be valid UTF-8 text"}
    assert no_internals(err)
    assert toy.calls == 0
    # The observability interceptor still logs and counts the call, under its real code.
    counted = server.metrics.registry.get_sample_value(
        "grpc_server_handled_total", {"grpc_method": GET_USER, "grpc_code": "INVALID_ARGUMENT"}
    )
    assert counted == 1
    # The same method still serves well-formed bytes.
    ok = await wire.raw_unary(channel, GET_USER, wire.length_delimited(1, b"u-1"))
    assert user_pb2.GetUserResponse.FromString(ok).user_id == "u-1"


async def test_bytes_that_are_not_protobuf_say_what_was_expected(served) -> None:
    channel, _, _ = served
    for garbage in (b"\x0a\x05ab", b"\xff\xff\xff", b"\x0b"):
        err = await rejected(wire.raw_unary(channel, GET_USER, garbage))
        assert err.code() == INVALID, garbage
        assert "user.v1.GetUserRequest" in (err.details() or "")
        assert no_internals(err)


async def test_health_and_reflection_streams_refuse_alike(served) -> None:
    channel, _, _ = served
    bad = wire.length_delimited(1, NOT_UTF8)  # HealthCheckRequest.service / request.host
    err = await rejected(wire.raw_unary(channel, "/grpc.health.v1.Health/Check", bad))
    assert err.code() == INVALID
    assert field_violations(err) == {"service": "must be valid UTF-8 text"}

    watch = channel.unary_stream("/grpc.health.v1.Health/Watch")(bad, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in watch:
            pass
    assert info.value.code() == INVALID
    assert no_internals(info.value)

    reflect = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )(timeout=10)
    await reflect.write(bad)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in reflect:
            pass
    assert info.value.code() == INVALID
    assert field_violations(info.value) == {"host": "must be valid UTF-8 text"}


def test_describe_names_a_nested_field_by_its_path() -> None:
    good = wire.length_delimited(1, b"u-1") + wire.length_delimited(2, b"a@example.com")
    bad = wire.length_delimited(1, b"u-1") + wire.length_delimited(5, NOT_UTF8)
    data = wire.length_delimited(1, good) + wire.length_delimited(1, bad)
    error = describe(user_pb2.BatchGetUsersResponse.DESCRIPTOR, data)
    assert error.message == "users.display_name: must be valid UTF-8 text"


def test_describe_without_a_field_to_blame() -> None:
    error = describe(user_pb2.GetUserRequest.DESCRIPTOR, b"\x0a\x05ab")
    assert error.code == INVALID
    assert "user.v1.GetUserRequest" in error.message
