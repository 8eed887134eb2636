"""Prometheus metrics scraped over HTTP after real calls."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.platform import db, errors
from libs.platform.metrics import MetricsEndpoint
from libs.platform.server import ServiceRegistration, start_server
from user.v1 import user_pb2, user_pb2_grpc

GET_USER = "/user.v1.UserService/GetUser"


class Toy(user_pb2_grpc.UserServiceServicer):
    async def GetUser(self, request, context):
        if request.user_id == "missing":
            raise errors.NotFound("no such user")
        return user_pb2.GetUserResponse(user_id=request.user_id)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
async def served(database_url: str):
    pool = await db.create_pool(database_url, attempts=1, max_size=4)
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, Toy()
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    server.watch_database(pool, interval=0.1)
    endpoint = MetricsEndpoint(server.metrics.registry, 0, host="127.0.0.1")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield user_pb2_grpc.UserServiceStub(channel), endpoint, pool
    endpoint.close()
    await server.stop(0)
    await pool.close()


async def test_calls_latency_pool_and_health_are_exported(served) -> None:
    stub, endpoint, pool = served
    for _ in range(3):
        await stub.GetUser(user_pb2.GetUserRequest(user_id="ok"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetUser(user_pb2.GetUserRequest(user_id="missing"))
    async with pool.acquire():  # one connection checked out while scraping
        m = await asyncio.to_thread(scrape, endpoint.port)

    calls = m["grpc_server_handled_total"]
    assert calls[(("grpc_code", "OK"), ("grpc_method", GET_USER))] == 3
    assert calls[(("grpc_code", "NOT_FOUND"), ("grpc_method", GET_USER))] == 1
    assert m["grpc_server_handling_seconds_count"][(("grpc_method", GET_USER),)] == 4
    assert m["grpc_server_handling_seconds_sum"][(("grpc_method", GET_USER),)] > 0
    buckets = m["grpc_server_handling_seconds_bucket"]
    assert buckets[(("grpc_method", GET_USER), ("le", "+Inf"))] == 4
    assert m["db_pool_in_use"][()] >= 1
    assert m["db_pool_size"][()] >= m["db_pool_in_use"][()]
    assert m["db_pool_max_size"][()] == 4
    assert "db_pool_idle" in m
    assert m["health_serving"][()] == 1
    # Health checks are streaming/infrastructure and must not pollute per-method counts.
    assert all(dict(k)["grpc_method"] == GET_USER for k in calls)


class Stalling(user_pb2_grpc.UserServiceServicer):
    """A handler that holds the event loop, as a blocking call on the request path would."""

    async def GetUser(self, request, context):
        time.sleep(0.15)  # noqa: ASYNC251 - the stall under test
        return user_pb2.GetUserResponse(user_id=request.user_id)


async def test_stalls_outside_the_handlers_are_exported() -> None:
    """A held loop shows as event-loop lag, a collection as a GC pause by generation, and on
    Linux the run-queue wait is a counter: what an operator reads to tell a slow handler
    from a stalled or starved process."""
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, Stalling()
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    endpoint = MetricsEndpoint(server.metrics.registry, 0, host="127.0.0.1")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await user_pb2_grpc.UserServiceStub(channel).GetUser(
                user_pb2.GetUserRequest(user_id="u")
            )
        gc.collect()
        first = await asyncio.to_thread(scrape, endpoint.port)
        gc.collect()
        second = await asyncio.to_thread(scrape, endpoint.port)
    finally:
        endpoint.close()
        await server.stop(0)

    lag = first["event_loop_lag_seconds_bucket"]
    assert lag[(("le", "0.05"),)] < lag[(("le", "+Inf"),)], "the 150 ms stall is not in the lag"
    full = (("generation", "2"),)
    assert first["python_gc_pause_seconds_count"][full] >= 1
    assert (
        second["python_gc_pause_seconds_count"][full] > first["python_gc_pause_seconds_count"][full]
    )
    assert first["python_gc_pause_seconds_sum"][full] > 0
    if sys.platform == "linux":
        # A counter per live thread: summed over threads it drops when one exits (the
        # executor's, say), so only the loop's own thread is compared across scrapes.
        main = (("thread", "main"),)
        waited = first["process_cpu_wait_seconds_total"]
        assert all(v >= 0 for v in waited.values())
        assert waited[main] <= second["process_cpu_wait_seconds_total"][main]
        # This thread, the event loop, ran the 150 ms stall on a CPU, under its own name.
        assert first["process_thread_cpu_seconds_total"][(("thread", "main"),)] >= 0.15
