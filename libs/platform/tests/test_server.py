"""The interceptor's exception mapping, exercised over real gRPC with a toy servicer."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from libs.platform import errors
from libs.platform.logs import JsonFormatter
from libs.platform.server import ServiceRegistration, start_server
from libs.platform.testing.grpc_errors import field_violations
from user.v1 import user_pb2, user_pb2_grpc

FAILURES = {
    "invalid": errors.InvalidArgument.field("user_id", "is required"),
    "missing": errors.NotFound("user x does not exist"),
    "dup": errors.AlreadyExists("exists"),
    "auth": errors.Unauthenticated("nope"),
    "denied": errors.PermissionDenied("no"),
    "precondition": errors.FailedPrecondition("not now"),
    "unavailable": errors.Unavailable("later"),
    "oserror": ConnectionRefusedError("refused"),
    "timeout": TimeoutError(),
    "bug": ZeroDivisionError("secret detail"),
}


class Toy(user_pb2_grpc.UserServiceServicer):
    async def GetUser(self, request, context):
        if request.user_id in FAILURES:
            raise FAILURES[request.user_id]
        return user_pb2.GetUserResponse(user_id=request.user_id)


@pytest.fixture
async def channel():
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, Toy()
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch
    await server.stop(0)


@pytest.mark.parametrize(
    ("user_id", "code", "message"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "user_id: is required"),
        ("missing", grpc.StatusCode.NOT_FOUND, "user x does not exist"),
        ("dup", grpc.StatusCode.ALREADY_EXISTS, "exists"),
        ("auth", grpc.StatusCode.UNAUTHENTICATED, "nope"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "no"),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION, "not now"),
        ("unavailable", grpc.StatusCode.UNAVAILABLE, "later"),
        ("oserror", grpc.StatusCode.UNAVAILABLE, None),
        ("timeout", grpc.StatusCode.UNAVAILABLE, None),
        ("bug", grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
async def test_error_mapping(channel, user_id, code, message) -> None:
    stub = user_pb2_grpc.UserServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetUser(user_pb2.GetUserRequest(user_id=user_id))
    assert info.value.code() == code
    if message:
        assert info.value.details() == message
    assert "secret" not in (info.value.details() or "")
    if user_id == "invalid":
        assert field_violations(info.value) == {"user_id": "is required"}


async def test_request_logging_with_request_id(channel, caplog) -> None:
    stub = user_pb2_grpc.UserServiceStub(channel)
    with caplog.at_level(logging.INFO, logger="rpc"):
        await stub.GetUser(
            user_pb2.GetUserRequest(user_id="ok"), metadata=[("x-request-id", "r-1")]
        )
    record = next(r for r in caplog.records if r.getMessage() == "rpc")
    assert record.method == "/user.v1.UserService/GetUser"
    assert record.code == "OK"
    assert record.duration_ms >= 0
    assert record.request_id == "r-1"
    line = json.loads(JsonFormatter("t").format(record))
    assert (line["method"], line["request_id"], line["level"]) == (
        "/user.v1.UserService/GetUser",
        "r-1",
        "INFO",
    )


async def test_health_and_reflection(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "user.v1.UserService"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    resp = await call.read()
    await call.done_writing()
    names = {s.name for s in resp.list_services_response.service}
    assert {"user.v1.UserService", "grpc.health.v1.Health"} <= names
