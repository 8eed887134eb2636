"""Readiness follows the database: a real cluster is stopped and started under a server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.platform import db
from libs.platform.health import LIVENESS_SERVICE
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from libs.platform.testing.postgres import PostgresCluster
from user.v1 import user_pb2_grpc

NAME = "user.v1.UserService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    # Its own cluster: stopping the shared one would break every other test.
    with PostgresCluster() as c:
        yield c


@pytest.fixture
async def served(cluster: PostgresCluster) -> AsyncIterator[tuple[GrpcServer, grpc.aio.Channel]]:
    pool = await db.create_pool(cluster.admin_dsn, attempts=1)
    server = await start_server(
        [
            ServiceRegistration(
                NAME,
                user_pb2_grpc.add_UserServiceServicer_to_server,
                user_pb2_grpc.UserServiceServicer(),
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    server.watch_database(pool, interval=0.1, timeout=0.5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield server, channel
    await server.stop(0)
    await pool.close()


async def statuses(channel: grpc.aio.Channel) -> dict[str, int]:
    stub = health_pb2_grpc.HealthStub(channel)
    out = {}
    for name in ("", NAME, LIVENESS_SERVICE):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=1)
        out[name] = resp.status
    return out


async def wait_for(channel: grpc.aio.Channel, want: Mapping[str, int], within: float) -> float:
    start = time.monotonic()
    while True:
        got = await statuses(channel)
        if got == want:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"health is {got}, wanted {want} within {within}s")
        await asyncio.sleep(0.05)


def scrape_health(server: GrpcServer) -> float | None:
    return server.metrics.registry.get_sample_value("health_serving")


async def test_readiness_follows_database_and_liveness_does_not(served, cluster) -> None:
    server, channel = served
    up = {"": SERVING, NAME: SERVING, LIVENESS_SERVICE: SERVING}
    down = {"": NOT_SERVING, NAME: NOT_SERVING, LIVENESS_SERVICE: SERVING}
    await wait_for(channel, up, within=2)
    assert scrape_health(server) == 1

    await asyncio.to_thread(cluster.stop_server, "fast")
    try:
        took = await wait_for(channel, down, within=3)
        assert took < 2, f"readiness took {took:.2f}s to notice the outage"
        assert scrape_health(server) == 0
    finally:
        await asyncio.to_thread(cluster.start_server)
    took = await wait_for(channel, up, within=5)
    assert scrape_health(server) == 1
    assert took < 3, f"readiness took {took:.2f}s to notice the database is back"


async def test_graceful_stop_reports_not_serving(served) -> None:
    server, channel = served
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == SERVING
    await server.stop(1)
    # The last thing a load balancer hears before the port closes.
    assert (await watch.read()).status == NOT_SERVING
