"""Health and reflection floods from one address are refused at once; other addresses and the
service's own methods are not touched (libs/platform/builtin_limits.py), against a real
grpc.aio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from libs.platform.builtin_limits import REFUSAL, BuiltinLimits
from libs.platform.server import ServiceRegistration, start_server
from libs.platform.testing.net import SourceAddressProxy
from user.v1 import user_pb2, user_pb2_grpc

BURST = 5
USER_SERVICE = "user.v1.UserService"


class Toy(user_pb2_grpc.UserServiceServicer):
    async def GetUser(self, request, context):
        return user_pb2.GetUserResponse(user_id=request.user_id)


@pytest.fixture
async def server():
    # A slow refill, so the burst is all a flood of a few dozen calls gets.
    running = await start_server(
        [ServiceRegistration(USER_SERVICE, user_pb2_grpc.add_UserServiceServicer_to_server, Toy())],
        host="127.0.0.1",
        port=0,
        builtin=BuiltinLimits(per_second=0.5, burst=BURST),
    )
    yield running
    await running.stop(0)


async def checks(channel: grpc.aio.Channel, n: int) -> list[grpc.StatusCode]:
    health = health_pb2_grpc.HealthStub(channel)
    codes = []
    for _ in range(n):
        try:
            await health.Check(health_pb2.HealthCheckRequest(service=USER_SERVICE), timeout=5)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
            last = err
    if grpc.StatusCode.RESOURCE_EXHAUSTED in codes:
        status = rpc_status.from_call(last)
        assert status is not None
        assert status.message.startswith(REFUSAL + "; retry in ")
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0
    return codes


async def test_a_health_flood_is_refused_for_its_address_only(server) -> None:
    async with (
        SourceAddressProxy(("127.0.0.1", server.port), "127.0.0.2") as flooder,
        grpc.aio.insecure_channel(flooder.address) as flood,
        SourceAddressProxy(("127.0.0.1", server.port), "127.0.0.3") as prober,
        grpc.aio.insecure_channel(prober.address) as probe,
    ):
        flooded = await checks(flood, 3 * BURST)
        assert flooded[:BURST] == [grpc.StatusCode.OK] * BURST
        assert set(flooded[BURST:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        # Another address still hears the truth, and the service's own calls are not limited.
        assert await checks(probe, BURST) == [grpc.StatusCode.OK] * BURST
        users = user_pb2_grpc.UserServiceStub(flood)
        for _ in range(2 * BURST):
            await users.GetUser(user_pb2.GetUserRequest(user_id="u"), timeout=5)


async def test_a_watch_stream_takes_one_token_when_it_starts(server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=USER_SERVICE)
        for _ in range(BURST):
            call = health.Watch(request, timeout=5)
            first = await call.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            call.cancel()
        refused = health.Watch(request, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused.read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_every_reflection_message_takes_a_token(server) -> None:
    """One stream with many lookups is as limited as many streams."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        queue: asyncio.Queue[reflection_pb2.ServerReflectionRequest | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            while (item := await queue.get()) is not None:
                yield item

        call = stub.ServerReflectionInfo(requests(), timeout=5)
        answered = 0
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            for _ in range(3 * BURST):
                await queue.put(reflection_pb2.ServerReflectionRequest(list_services=""))
                response = await call.read()
                assert response is not grpc.aio.EOF
                assert USER_SERVICE in [s.name for s in response.list_services_response.service]
                answered += 1
        assert answered == BURST
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert REFUSAL in (caught.value.details() or "")
