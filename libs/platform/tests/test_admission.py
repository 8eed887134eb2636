from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from libs.platform.admission import (
    Overloaded,
    RateLimiter,
    WorkPool,
    client_address,
    retry_status,
)
from libs.platform.testing.net import ipv6_loopback


def test_client_address() -> None:
    assert client_address("ipv4:10.1.2.3:5555") == "10.1.2.3"
    assert client_address("ipv6:[::ffff:10.1.2.3]:5555") == "10.1.2.3"
    # One subscriber owns a /64: its addresses are one caller.
    assert client_address("ipv6:[2001:db8::1]:443") == "2001:db8::/64"
    assert client_address("ipv6:[2001:db8::ffff:2]:443") == "2001:db8::/64"
    assert client_address("ipv6:[::1]:5555") == "::/64"
    assert client_address("unix:/tmp/sock") == "unix:/tmp/sock"
    assert client_address(None) == "unknown"
    # gRPC core writes IPv6 peers as URIs, the brackets percent-encoded.
    assert client_address("ipv6:%5B2001:db8::1%5D:443") == "2001:db8::/64"
    assert client_address("ipv6:%5B::ffff:10.1.2.3%5D:443") == "10.1.2.3"
    assert client_address("ipv6:%5Bfe80::1%25eth0%5D:443") == "fe80::/64"


async def test_client_address_of_the_peers_grpc_reports() -> None:
    """The peer strings a real server hands its handlers, not the ones a reader expects:
    an IPv6 caller once became one key per connection, port included."""

    def peer(request: bytes, context: grpc.ServicerContext) -> bytes:
        return client_address(context.peer()).encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "t.T", {"Peer": grpc.unary_unary_rpc_method_handler(peer)}
            )
        ]
    )
    hosts = ["127.0.0.1", *(["::1"] if ipv6_loopback() else [])]
    ports = {
        host: server.add_insecure_port(f"[{host}]:0" if ":" in host else f"{host}:0")
        for host in hosts
    }
    await server.start()
    try:
        for host, port in ports.items():
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            async with grpc.aio.insecure_channel(target) as channel:
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    "/t.T/Peer"
                )
                seen = (await call(b"")).decode()
            assert seen == {"127.0.0.1": "127.0.0.1", "::1": "::/64"}[host]
    finally:
        await server.stop(0)


def test_retry_status_carries_retry_info() -> None:
    status = retry_status("too many sign-ups", 2.2)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.details == "too many sign-ups; retry in 3 s"
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    decoded = status_pb2.Status.FromString(raw)
    info = error_details_pb2.RetryInfo()
    assert decoded.details[0].Unpack(info)
    assert info.retry_delay.seconds == 3
    assert retry_status("x", 0.01).details == "x; retry in 1 s"


def test_rate_limiter_bursts_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(3, 0.5, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(2.0)
    assert limiter.take("b") is None  # keys are independent
    now[0] += 2.0
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(2.0)


def test_rate_limiter_keeps_bounded_keys() -> None:
    limiter = RateLimiter(1, 0.001, max_keys=2)
    for key in ("a", "b", "c"):
        assert limiter.take(key) is None
    assert limiter.take("c") is not None
    assert limiter.take("a") is None  # forgotten: starts full again


async def test_work_pool_bounds_running_and_waiting_calls() -> None:
    pool = WorkPool("sign-ups", workers=1, queue=1)
    release = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(release.wait, 10))
        second = asyncio.ensure_future(pool.run(lambda: "second"))
        await asyncio.sleep(0.05)
        assert pool.in_use == 2
        with pytest.raises(Overloaded) as info:
            await pool.run(lambda: "third")
        assert info.value.retry_after >= 1
        assert str(info.value) == "too many sign-ups at once"
        release.set()
        assert await first is True
        assert await second == "second"
        assert pool.in_use == 0
    finally:
        pool.close()


async def test_work_pool_caller_giving_up_keeps_the_bound() -> None:
    pool = WorkPool("hashing", workers=1, queue=0)
    release = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(release.wait, 10))
        await asyncio.sleep(0.05)
        running.cancel()
        await asyncio.sleep(0.05)
        # The thread still runs the cancelled call: its place is not free yet.
        with pytest.raises(Overloaded):
            await pool.run(lambda: None)
        release.set()
        for _ in range(100):
            if pool.in_use == 0:
                break
            await asyncio.sleep(0.01)
        assert await pool.run(lambda: "free again") == "free again"
    finally:
        pool.close()


async def test_work_pool_starts_waiting_calls_by_rank_then_arrival() -> None:
    pool = WorkPool("logins", workers=1, queue=4)
    release = threading.Event()
    order: list[str] = []
    try:
        running = asyncio.ensure_future(pool.run(release.wait, 10))
        await asyncio.sleep(0.05)
        waiting = [
            asyncio.ensure_future(pool.run(order.append, name, rank=rank))
            for name, rank in (("guess 1", 5), ("owner", 0), ("guess 2", 5), ("new", 2))
        ]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(running, *waiting)
        assert order == ["owner", "new", "guess 1", "guess 2"]
    finally:
        pool.close()


async def test_work_pool_full_queue_refuses_the_worst_ranked_call() -> None:
    pool = WorkPool("logins", workers=1, queue=2)
    release = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(release.wait, 10))
        await asyncio.sleep(0.05)
        guesses = [asyncio.ensure_future(pool.run(lambda: "guess", rank=9)) for _ in range(2)]
        await asyncio.sleep(0.05)
        # Full: an equal or worse rank is refused at once...
        with pytest.raises(Overloaded):
            await pool.run(lambda: "another guess", rank=9)
        # ...a better one takes the place of the latest worst-ranked, which is refused.
        owner = asyncio.ensure_future(pool.run(lambda: "owner", rank=0))
        await asyncio.sleep(0.05)
        assert guesses[1].done()
        with pytest.raises(Overloaded):
            guesses[1].result()
        assert pool.in_use == 3
        release.set()
        assert await running is True
        assert await owner == "owner"
        assert await guesses[0] == "guess"
        assert pool.in_use == 0
    finally:
        pool.close()


async def test_work_pool_waiting_caller_giving_up_hands_its_turn_on() -> None:
    pool = WorkPool("logins", workers=1, queue=2)
    release = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(release.wait, 10))
        await asyncio.sleep(0.05)
        quitter = asyncio.ensure_future(pool.run(lambda: "never", rank=0))
        patient = asyncio.ensure_future(pool.run(lambda: "patient", rank=5))
        await asyncio.sleep(0.05)
        quitter.cancel()
        await asyncio.sleep(0.05)
        assert pool.in_use == 2
        release.set()
        assert await patient == "patient"
        assert await running is True
        assert pool.in_use == 0
    finally:
        pool.close()
