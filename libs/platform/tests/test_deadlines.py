"""The caller's deadline reaches downstream gRPC calls and SQL, and nothing outlives it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from libs.platform import clients, db, deadlines, errors
from libs.platform.server import ServiceRegistration, start_server
from user.v1 import user_pb2, user_pb2_grpc


class Downstream(user_pb2_grpc.UserServiceServicer):
    """Records the deadline it was given and whether it was cancelled."""

    def __init__(self) -> None:
        self.remaining: list[float] = []
        self.cancelled = asyncio.Event()

    async def GetUser(self, request, context):
        self.remaining.append(context.time_remaining())
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return user_pb2.GetUserResponse(user_id=request.user_id)


class Middle(user_pb2_grpc.UserServiceServicer):
    """Forwards to Downstream with a generous default timeout of its own."""

    def __init__(self, stub: user_pb2_grpc.UserServiceAsyncStub) -> None:
        self.stub = stub

    async def GetUser(self, request, context):
        return await clients.call(
            self.stub.GetUser, request, dependency="downstream", deadline=10.0
        )


async def serve(servicer) -> tuple[Any, Any]:
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, servicer
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    return server, f"127.0.0.1:{server.port}"


async def test_downstream_call_gets_the_remaining_time_and_is_cancelled() -> None:
    down = Downstream()
    down_server, down_addr = await serve(down)
    channel = clients.open_channel(down_addr)
    mid_server, mid_addr = await serve(Middle(user_pb2_grpc.UserServiceStub(channel)))
    try:
        async with grpc.aio.insecure_channel(mid_addr) as ch:
            stub = user_pb2_grpc.UserServiceStub(ch)
            start = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetUser(user_pb2.GetUserRequest(user_id="u"), timeout=0.4)
            took = time.monotonic() - start
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert took < 1.0
        # The middle's own 10 s default was cut to what the caller had left. The deadline
        # crosses each hop as a rounded grpc-timeout header, so the far end may read a few
        # milliseconds more than 0.4 s (0.4007 s seen); 10 s would be the failure.
        assert len(down.remaining) == 1 and 0 < down.remaining[0] <= 0.41
        await asyncio.wait_for(down.cancelled.wait(), 1.0)
    finally:
        await mid_server.stop(0)
        await channel.close()
        await down_server.stop(0)


async def test_without_a_caller_deadline_the_default_applies() -> None:
    down = Downstream()
    down_server, down_addr = await serve(down)
    channel = clients.open_channel(down_addr)
    try:
        stub = user_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(errors.Unavailable) as info:
            await clients.call(
                stub.GetUser, user_pb2.GetUserRequest(user_id="u"), dependency="d", deadline=0.2
            )
        # No caller deadline was involved, so the dependency is merely unavailable.
        assert not isinstance(info.value, deadlines.DeadlineExceeded)
        # Rounded on the wire like the test above: a little over 0.2 s, never 10 s.
        assert 0 < down.remaining[0] <= 0.21
    finally:
        await channel.close()
        await down_server.stop(0)


async def test_spent_deadline_fails_before_calling() -> None:
    token = deadlines.set_from_remaining(0.001)
    try:
        with pytest.raises(deadlines.DeadlineExceeded):
            await clients.call(
                lambda *a, **k: pytest.fail("must not be called"),
                None,
                dependency="d",
                deadline=1.0,
            )
        with pytest.raises(deadlines.DeadlineExceeded):
            db.query_timeout()
    finally:
        deadlines.deadline_var.reset(token)


def test_budget() -> None:
    assert deadlines.remaining() is None
    assert deadlines.budget(3.0) == 3.0
    token = deadlines.set_from_remaining(1.0)
    try:
        assert 0.9 < deadlines.budget(3.0) <= 1.0
        assert deadlines.budget(0.5) == 0.5
        assert not deadlines.expired()
    finally:
        deadlines.deadline_var.reset(token)


async def test_sql_statement_is_cancelled_at_the_deadline(database_url: str) -> None:
    pool = await db.create_pool(database_url, attempts=1)
    token = deadlines.set_from_remaining(0.3)
    try:
        start = time.monotonic()
        async with db.acquire(pool, 5.0) as conn:
            with pytest.raises(TimeoutError):
                await conn.execute("SELECT pg_sleep(10)", timeout=db.query_timeout())
        assert time.monotonic() - start < 1.0
        assert deadlines.expired()
    finally:
        deadlines.deadline_var.reset(token)
    try:
        # asyncpg cancelled the statement on the server too: nothing is left running.
        active = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
        )
        assert active == 0
    finally:
        await pool.close()
