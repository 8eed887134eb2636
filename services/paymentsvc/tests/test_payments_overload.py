"""paymentsvc against a usersvc that sheds load: a shed user check is retried within the
retry budget and the deadline, and a payment that cannot be checked is refused as
UNAVAILABLE (retryable), never INTERNAL, and never written."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.queue import QueuePolicy
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc import app
from services.paymentsvc.tests.conftest import FakeUsers, make_settings
from user.v1 import user_pb2, user_pb2_grpc

BATCH = "/user.v1.UserService/BatchGetUsers"
# usersvc admits one call at a time; its probe stays quiet, so only the limit sheds.
ONE = LimitPolicy(initial=1, min_limit=1, max_limit=1)


async def shedding_users(servicer: FakeUsers, retry_after: float) -> GrpcServer:
    return await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService", user_pb2_grpc.add_UserServiceServicer_to_server, servicer
            )
        ],
        host="127.0.0.1",
        port=0,
        overload=ONE,
        queue=QueuePolicy(probe_interval_seconds=3600),
        shed_retry_after=retry_after,
    )


@pytest.fixture
async def system(request, database_url, jwks, service_keys) -> AsyncIterator[tuple[Any, ...]]:
    users = FakeUsers(gate=asyncio.Event())
    users_server = await shedding_users(users, request.param)
    settings = dataclasses.replace(
        make_settings(database_url, users_server.port, jwks.port, service_keys),
        usersvc_timeout_seconds=5.0,
    )
    payments = await app.start(settings)
    channel = service_keys.channel(payments.port, caller="opsctl", audience="paymentsvc")
    try:
        yield users, users_server, payments, payment_pb2_grpc.PaymentServiceStub(channel)
    finally:
        users.gate.set()
        await channel.close()
        await payments.stop(0)
        await users_server.stop(0)


def retries(payments: app.PaymentApp) -> dict[str, float]:
    text = generate_latest(payments.server.metrics.registry).decode()
    return {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "grpc_client_overload_retries_total" and s.labels["grpc_method"] == BATCH
    }


def req(user_id: str) -> payment_pb2.CreatePaymentRequest:
    return payment_pb2.CreatePaymentRequest(user_id=user_id, amount=500)


@contextlib.asynccontextmanager
async def occupied(users_server: GrpcServer, users: FakeUsers, user_id: str) -> AsyncIterator[Any]:
    """usersvc's one place, taken by another caller's check held at the gate: paymentsvc
    sends one check at a time, so its own checks never compete with each other."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{users_server.port}") as channel:
        request = user_pb2.BatchGetUsersRequest(user_ids=[user_id])
        call = asyncio.ensure_future(user_pb2_grpc.UserServiceStub(channel).BatchGetUsers(request))
        await users.entered.wait()
        yield call
        users.gate.set()
        await call


@pytest.mark.parametrize("system", [0.05], indirect=True)
async def test_a_check_usersvc_keeps_shedding_fails_as_unavailable(system) -> None:
    users, users_server, payments, stub = system
    other, user = users.add(), users.add()
    async with occupied(users_server, users, other):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreatePayment(req(user))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "a backing service is overloaded; retry later"
    # The check was sent once and retried twice (the most per call), each time shed.
    assert users_server.shedding.shed[(BATCH, "limit")] == 3
    assert retries(payments) == {"spent": 2, "attempts": 1}
    # The refused payment was never written.
    assert await payments.pool.fetchval("SELECT count(*) FROM payments") == 0


@pytest.mark.parametrize("system", [1.0], indirect=True)
async def test_a_shed_check_is_retried_once_usersvc_has_room(system) -> None:
    users, users_server, payments, stub = system
    other, user = users.add(), users.add()
    async with occupied(users_server, users, other):
        waiting = asyncio.ensure_future(stub.CreatePayment(req(user)))
        # Once the payment's check has been shed, the other call ends; the retry comes a
        # second later.
        for _ in range(500):
            if users_server.shedding.shed[(BATCH, "limit")]:
                break
            await asyncio.sleep(0.01)
    created = await waiting
    assert created.status == payment_pb2.PAYMENT_STATUS_COMPLETED
    assert users_server.shedding.shed[(BATCH, "limit")] == 1
    assert retries(payments) == {"spent": 1}
    assert await payments.pool.fetchval("SELECT count(*) FROM payments") == 1
