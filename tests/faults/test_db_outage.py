"""PostgreSQL stops in the middle of a stream of idempotent CreatePayment calls.

The test owns its cluster (stopping the shared one would break other tests). Calls carry
idempotency keys and are retried on UNAVAILABLE, as a well-behaved client would do.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
import grpc
import pytest

from libs.platform.testing.postgres import PostgresCluster, create_database
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from tests.faults.system import CHEAP_ARGON2, FaultSystem
from user.v1 import user_pb2, user_pb2_grpc

PAYMENTS = 40
OUTAGE_AFTER = 10  # acknowledged payments before PostgreSQL is stopped
OUTAGE_SECONDS = 2.0
FAIL_FAST_S = 1.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as c:
        yield c


@dataclass
class Stream:
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> payment id
    failures: list[tuple[grpc.StatusCode, float]] = field(default_factory=list)
    acked_after_outage: int = 0


@pytest.fixture
async def services(cluster: PostgresCluster, faults: FaultSystem) -> AsyncIterator[tuple]:
    users_dsn = await create_database(cluster.admin_dsn)
    pay_dsn = await create_database(cluster.admin_dsn)
    await faults.stand_in_for_issuer()  # the user's token; Login is not what fails here
    users = await userapp.start(
        faults.settings(UserSettings, "usersvc", database_url=users_dsn, **CHEAP_ARGON2)
    )
    pay = await payapp.start(
        faults.settings(
            PaySettings, "paymentsvc", database_url=pay_dsn, usersvc_timeout_seconds=1.0
        )
    )
    try:
        yield users, pay, pay_dsn
    finally:
        await pay.stop(0)
        await users.stop(0)


async def test_payments_survive_a_database_outage(cluster, services, faults) -> None:
    users, pay, pay_dsn = services
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{users.port}") as uch,
        grpc.aio.insecure_channel(f"127.0.0.1:{pay.port}") as pch,
    ):
        user = await user_pb2_grpc.UserServiceStub(uch).CreateUser(
            user_pb2.CreateUserRequest(email="outage@example.com", password="correct horse")
        )
        stub = payment_pb2_grpc.PaymentServiceStub(pch)
        as_user = faults.user_metadata(user.user_id)
        stream = Stream()
        outage_over = asyncio.Event()
        outage_started = asyncio.Event()
        enough_acked = asyncio.Event()

        async def outage() -> None:
            await enough_acked.wait()
            await asyncio.to_thread(cluster.stop_server, "fast")
            outage_started.set()
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(cluster.start_server)
            outage_over.set()

        async def pay_once(key: str) -> None:
            request = payment_pb2.CreatePaymentRequest(
                user_id=user.user_id, amount=100, currency="EUR", idempotency_key=key
            )
            while True:
                start = time.monotonic()
                try:
                    resp = await stub.CreatePayment(request, timeout=5, metadata=as_user)
                except grpc.aio.AioRpcError as exc:
                    stream.failures.append((exc.code(), time.monotonic() - start))
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.1)
                    continue
                stream.acked[key] = resp.payment_id
                if len(stream.acked) >= OUTAGE_AFTER:
                    enough_acked.set()
                # The database is down from outage_started until it restarts, so a success
                # after that point and after failures is one served after the outage. (Not
                # outage_over: calls can all finish between the server accepting again and
                # start_server() returning.)
                if outage_started.is_set() and stream.failures:
                    stream.acked_after_outage += 1
                return

        controller = asyncio.create_task(outage())
        keys = [f"order-{i}-{uuid.uuid4().hex[:6]}" for i in range(PAYMENTS)]
        async with asyncio.timeout(60):
            for i in range(0, PAYMENTS, 2):
                # Two at a time, so the outage also lands on calls in flight.
                await asyncio.gather(*(pay_once(k) for k in keys[i : i + 2]))
                if i == OUTAGE_AFTER + 2:
                    await outage_started.wait()
            await controller

    durations = [d for _, d in stream.failures]
    print(  # measured numbers, kept in the test log
        f"outage: {len(stream.failures)} failed calls, slowest {max(durations, default=0):.3f}s, "
        f"{stream.acked_after_outage} acknowledged after the database came back"
    )
    assert outage_started.is_set() and outage_over.is_set()
    assert stream.failures, "the outage produced no failed calls"
    slow = [round(d, 2) for _, d in stream.failures if d >= FAIL_FAST_S]
    assert not slow, f"calls during the outage did not fail fast: {slow}"
    assert {code for code, _ in stream.failures} == {grpc.StatusCode.UNAVAILABLE}
    assert stream.acked_after_outage > 0, "the service did not serve again after the outage"
    assert len(stream.acked) == PAYMENTS

    conn = await asyncpg.connect(pay_dsn)
    try:
        rows = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n, min(id::text) AS id FROM payments "
            "GROUP BY idempotency_key"
        )
    finally:
        await conn.close()
    in_db = {r["idempotency_key"]: (r["n"], r["id"]) for r in rows}
    assert set(in_db) == set(stream.acked)
    for key, payment_id in stream.acked.items():
        assert in_db[key] == (1, payment_id), key
