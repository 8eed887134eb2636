"""Overload protection over real gRPC: shedding at the limit and for a queue, health never
shed, the probe's listener, and budgeted retries of shed calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from libs.platform.overload.core import QUEUE, CoreLimits
from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.queue import QueuePolicy
from libs.platform.overload.retries import RetryInterceptor, RetryPolicy, RetryStats
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from libs.platform.testing.net import SourceAddressProxy
from user.v1 import user_pb2, user_pb2_grpc

GET_USER = "/user.v1.UserService/GetUser"
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
# Two places; the probe runs once at start, then never again during a test, so nothing but
# the test moves the queue gate.
TWO = LimitPolicy(initial=2, min_limit=2, max_limit=2)
QUIET_PROBE = QueuePolicy(probe_interval_seconds=3600, refuse=True)


@dataclass
class Gated(user_pb2_grpc.UserServiceServicer):
    """GetUser("wait") holds its place until the test opens the gate."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    started: int = 0
    answered: int = 0

    async def GetUser(self, request, context):
        self.started += 1
        self.entered.put_nowait(request.user_id)
        if request.user_id == "wait":
            await self.gate.wait()
        self.answered += 1
        return user_pb2.GetUserResponse(user_id=request.user_id)


@dataclass
class Served:
    server: GrpcServer
    servicer: Gated
    channel: grpc.aio.Channel

    @property
    def stub(self) -> user_pb2_grpc.UserServiceAsyncStub:
        return user_pb2_grpc.UserServiceStub(self.channel)


NO_CORE_LIMITS = CoreLimits()


async def serve(
    policy: LimitPolicy | None = TWO, retry_after: float = 0.05, core: CoreLimits = NO_CORE_LIMITS
) -> Served:
    servicer = Gated()
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, servicer
            )
        ],
        host="127.0.0.1",
        port=0,
        overload=policy,
        queue=QUIET_PROBE,
        shed_retry_after=retry_after,
        core=core,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    return Served(server, servicer, channel)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = await serve()
    yield s
    s.servicer.gate.set()
    await s.channel.close()
    await s.server.stop(0)


async def fill(s: Served, n: int) -> list[asyncio.Task[Any]]:
    """n calls that hold their places; returns once all of them run in the handler."""
    calls = [
        asyncio.ensure_future(s.stub.GetUser(user_pb2.GetUserRequest(user_id="wait")))
        for _ in range(n)
    ]
    for _ in range(n):
        await s.servicer.entered.get()
    return calls


def retry_info(err: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(err)
    assert status is not None and status.code == EXHAUSTED.value[0]
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    raise AssertionError("no RetryInfo")


async def test_calls_over_the_limit_are_refused_at_once_with_retry_info(served: Served) -> None:
    held = await fill(served, 2)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await served.stub.GetUser(user_pb2.GetUserRequest(user_id="x"))
        assert info.value.code() == EXHAUSTED
        assert info.value.details() == "too many calls in flight on this server; retry in 0.05 s"
        assert retry_info(info.value) == pytest.approx(0.05)
    # Answered while both places were still held: nobody waited for a place to free up.
    assert not any(c.done() for c in held)
    assert served.servicer.started == 2
    served.servicer.gate.set()
    assert [r.user_id for r in await asyncio.gather(*held)] == ["wait", "wait"]
    assert (await served.stub.GetUser(user_pb2.GetUserRequest(user_id="y"))).user_id == "y"
    assert served.server.shedding is not None
    assert served.server.shedding.limit.in_flight == 0


async def test_at_the_limit_the_caller_holding_the_most_is_shed_first() -> None:
    """One address holding every place must not keep everyone else out: at the limit its
    calls are refused while another address still gets one of the places beyond it."""
    s = await serve(LimitPolicy(initial=4, min_limit=4, max_limit=4))  # and 1 beyond
    try:
        held = await fill(s, 4)  # all from 127.0.0.1
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.stub.GetUser(user_pb2.GetUserRequest(user_id="x"))
        assert info.value.code() == EXHAUSTED
        async with (
            SourceAddressProxy(("127.0.0.1", s.server.port), "127.0.0.2") as proxy,
            grpc.aio.insecure_channel(proxy.address) as channel,
        ):
            other = user_pb2_grpc.UserServiceStub(channel)
            assert (await other.GetUser(user_pb2.GetUserRequest(user_id="b"))).user_id == "b"
            # A call of its own that holds its place, then the overflow is spent: refused.
            held.append(
                asyncio.ensure_future(other.GetUser(user_pb2.GetUserRequest(user_id="wait")))
            )
            assert await s.servicer.entered.get() == "b"
            assert await s.servicer.entered.get() == "wait"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await other.GetUser(user_pb2.GetUserRequest(user_id="c"))
            assert info.value.code() == EXHAUSTED
            assert s.server.shedding is not None
            assert dict(s.server.shedding.holding) == {"127.0.0.1": 4, "127.0.0.2": 1}
            s.servicer.gate.set()
            await asyncio.gather(*held)
        assert not s.server.shedding.holding
        assert s.server.shedding.limit.in_flight == 0
    finally:
        s.servicer.gate.set()
        await s.channel.close()
        await s.server.stop(0)


async def test_health_and_reflection_are_never_shed(served: Served) -> None:
    await fill(served, 2)
    health = health_pb2_grpc.HealthStub(served.channel)
    for name in ("", "liveness", "user.v1.UserService"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    assert (await call.read()).list_services_response.service
    await call.done_writing()


async def test_shedding_is_counted_in_metrics(served: Served) -> None:
    await fill(served, 2)
    for _ in range(4):
        with pytest.raises(grpc.aio.AioRpcError):
            await served.stub.GetUser(user_pb2.GetUserRequest(user_id="x"))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(
            generate_latest(served.server.metrics.registry).decode()
        )
        for s in family.samples
    }
    assert samples[("overload_shed_total", (("grpc_method", GET_USER), ("reason", "limit")))] == 4
    assert samples[("overload_concurrency_limit", ())] == 2
    assert samples[("overload_in_flight", ())] == 2
    handled = (("grpc_code", "RESOURCE_EXHAUSTED"), ("grpc_method", GET_USER))
    assert samples[("grpc_server_handled_total", handled)] == 4


async def test_unknown_methods_are_not_limited_or_counted(served: Served) -> None:
    await fill(served, 2)
    nothing: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = served.channel.unary_unary(
        "/no.such.Service/Method"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await nothing(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_standing_queue_before_the_handlers_sheds_a_share_of_calls(served: Served) -> None:
    shedding = served.server.shedding
    assert shedding is not None
    gate = shedding.queue
    # What the probe would report: 0.5 ms unloaded, then calls waiting 50 ms for a second.
    base = time.monotonic() + 1
    gate.probe(0.0005, base)
    for i in range(1, 51):
        gate.probe(0.0505, base + i * 0.02)
    assert 0 < gate.fraction <= QUIET_PROBE.max_fraction
    await served.stub.GetUser(user_pb2.GetUserRequest(user_id="known"))  # the method is known
    codes = []
    for _ in range(40):
        try:
            await served.stub.GetUser(user_pb2.GetUserRequest(user_id="x"))
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as exc:
            codes.append(exc.code())
            assert exc.details() == "too many calls in flight on this server; retry in 0.05 s"
    assert codes.count(EXHAUSTED) == pytest.approx(40 * gate.fraction, abs=1)
    assert set(codes) == {grpc.StatusCode.OK, EXHAUSTED}
    assert shedding.shed[(GET_USER, "queue")] == codes.count(EXHAUSTED)


async def test_the_probe_listener_serves_nothing_but_the_probe(served: Served) -> None:
    probe = served.server._probe
    assert probe is not None
    async with grpc.aio.insecure_channel(probe.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await user_pb2_grpc.UserServiceStub(channel).GetUser(
                user_pb2.GetUserRequest(user_id="x")
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert served.servicer.started == 0


async def test_shedding_can_be_switched_off() -> None:
    s = await serve(policy=None)
    try:
        await fill(s, 5)  # more than TWO: all admitted
        assert s.server.shedding is None
    finally:
        s.servicer.gate.set()
        await s.channel.close()
        await s.server.stop(0)


class NoWait:
    """Stands in for asyncio.sleep in the retrying client: records each delay, and can let
    something happen in it (places freeing up), without the test waiting for real."""

    def __init__(self, meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
        self.delays: list[float] = []
        self._meanwhile = meanwhile

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._meanwhile is not None:
            await self._meanwhile()


def retrying(s: Served, policy: RetryPolicy, sleep: NoWait) -> tuple[grpc.aio.Channel, RetryStats]:
    stats = RetryStats()
    interceptor = RetryInterceptor(policy, stats, sleep=sleep, rand=lambda: 0.0)
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{s.server.port}", interceptors=[interceptor]
    ), stats


async def test_a_shed_call_is_retried_after_the_delay_and_then_served(served: Served) -> None:
    held = await fill(served, 2)

    async def held_calls_end() -> None:
        served.servicer.gate.set()
        await asyncio.gather(*held)

    sleep = NoWait(held_calls_end)  # the held calls end while the client waits to retry
    channel, stats = retrying(served, RetryPolicy(), sleep)
    async with channel:
        resp = await user_pb2_grpc.UserServiceStub(channel).GetUser(
            user_pb2.GetUserRequest(user_id="r"), timeout=5
        )
    assert resp.user_id == "r"
    assert sleep.delays == [pytest.approx(0.05)]
    assert stats.counts == {(GET_USER, "spent"): 1}


async def test_the_retry_budget_caps_retries_at_its_share_of_calls(served: Served) -> None:
    await fill(served, 2)  # every other call is shed until the end of the test
    sleep = NoWait()
    policy = RetryPolicy(ratio=0.1, min_per_second=0.0, max_retries=2)
    channel, stats = retrying(served, policy, sleep)
    async with channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        for _ in range(100):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetUser(user_pb2.GetUserRequest(user_id="x"), timeout=5)
            # The caller sees the server's own answer, RetryInfo included.
            assert info.value.code() == EXHAUSTED
            assert retry_info(info.value) == pytest.approx(0.05)
    spent = stats.counts[(GET_USER, "spent")]
    assert spent == 10  # 10% of 100 calls
    shedding = served.server.shedding
    assert shedding is not None
    assert shedding.shed[(GET_USER, "limit")] == 100 + spent  # never more attempts than that
    assert stats.counts[(GET_USER, "budget")] + stats.counts[(GET_USER, "attempts")] == 100


async def test_no_retry_when_the_delay_does_not_fit_the_deadline() -> None:
    s = await serve(retry_after=5.0)
    try:
        await fill(s, 2)
        sleep = NoWait()
        channel, stats = retrying(s, RetryPolicy(), sleep)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await user_pb2_grpc.UserServiceStub(channel).GetUser(
                    user_pb2.GetUserRequest(user_id="x"), timeout=1
                )
        assert info.value.code() == EXHAUSTED
        assert sleep.delays == []
        assert stats.counts == {(GET_USER, "deadline"): 1}
    finally:
        s.servicer.gate.set()
        await s.channel.close()
        await s.server.stop(0)


async def test_other_refusals_are_not_retried(served: Served) -> None:
    # RESOURCE_EXHAUSTED without RetryInfo (a message over the size limit, a quota): the
    # same call would fail again.
    sleep = NoWait()
    channel, stats = retrying(served, RetryPolicy(), sleep)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await user_pb2_grpc.UserServiceStub(channel).GetUser(
                user_pb2.GetUserRequest(user_id="x" * (2 << 20)), timeout=5
            )
    assert info.value.code() == EXHAUSTED
    assert sleep.delays == [] and not stats.counts


async def test_core_bound_refuses_before_any_handler_of_ours() -> None:
    served = await serve(policy=None, core=CoreLimits(max_concurrent_rpcs=1))
    try:
        held = asyncio.ensure_future(served.stub.GetUser(user_pb2.GetUserRequest(user_id="wait")))
        assert await asyncio.wait_for(served.servicer.entered.get(), 5) == "wait"
        # Refused by grpc.aio itself while one call is in flight: no handler ran for it.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.GetUser(user_pb2.GetUserRequest(user_id="late"), timeout=5)
        assert refused.value.code() == EXHAUSTED
        assert served.servicer.started == 1
        served.servicer.gate.set()
        await held
        # Once the place is free (grpc.aio releases it just after the answer), calls are
        # served again.
        for _ in range(50):
            try:
                answer = await served.stub.GetUser(user_pb2.GetUserRequest(user_id="next"))
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == EXHAUSTED
                await asyncio.sleep(0.02)
        assert answer.user_id == "next"
    finally:
        await served.channel.close()
        await served.server.stop(0)


async def test_stream_bound_makes_the_client_queue_its_own_calls() -> None:
    served = await serve(
        policy=None, core=CoreLimits(max_concurrent_streams=1, excess_streams=QUEUE)
    )
    try:
        # One connection: the second call is not even sent while the first holds the stream.
        held = asyncio.ensure_future(served.stub.GetUser(user_pb2.GetUserRequest(user_id="wait")))
        assert await asyncio.wait_for(served.servicer.entered.get(), 5) == "wait"
        queued = asyncio.ensure_future(
            served.stub.GetUser(user_pb2.GetUserRequest(user_id="queued"), timeout=5)
        )
        await asyncio.sleep(0.3)
        assert served.servicer.started == 1
        served.servicer.gate.set()
        await held
        assert (await queued).user_id == "queued"
        assert served.servicer.started == 2
    finally:
        await served.channel.close()
        await served.server.stop(0)
