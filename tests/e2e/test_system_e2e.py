"""All three services in-process on ephemeral ports, each with its own database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import jwt
import pytest

from auth.v1 import auth_pb2, auth_pb2_grpc
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from user.v1 import user_pb2, user_pb2_grpc


@dataclass
class System:
    users_app: userapp.UserApp
    users: user_pb2_grpc.UserServiceStub
    payments: payment_pb2_grpc.PaymentServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    auth_app: authapp.AuthApp


@pytest.fixture
async def system(new_database) -> AsyncIterator[System]:
    users = await userapp.start(
        UserSettings(
            database_url=await new_database(),
            grpc_port=0,
            grpc_host="127.0.0.1",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
        )
    )
    users_addr = f"127.0.0.1:{users.port}"
    payments = await payapp.start(
        PaySettings(
            database_url=await new_database(),
            grpc_port=0,
            grpc_host="127.0.0.1",
            usersvc_addr=users_addr,
            usersvc_timeout_seconds=1.0,
        )
    )
    auth = await authapp.start(
        AuthSettings(
            database_url=await new_database(),
            grpc_port=0,
            grpc_host="127.0.0.1",
            usersvc_addr=users_addr,
            usersvc_timeout_seconds=1.0,
        )
    )
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in (users, payments, auth)]
    try:
        yield System(
            users,
            user_pb2_grpc.UserServiceStub(channels[0]),
            payment_pb2_grpc.PaymentServiceStub(channels[1]),
            auth_pb2_grpc.AuthServiceStub(channels[2]),
            auth,
        )
    finally:
        for ch in channels:
            await ch.close()
        for a in (auth, payments, users):
            await a.stop(0)


async def test_signup_login_pay_retry_list(system: System) -> None:
    user = await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="ada@example.com", password="correct horse")
    )
    login = await system.auth.Login(
        auth_pb2.LoginRequest(email="ADA@example.com", password="correct horse")
    )
    claims = jwt.decode(
        login.token,
        system.auth_app.signing_key.public_key,
        algorithms=["EdDSA"],
        audience="micro",
    )
    assert claims["sub"] == user.user_id

    request = payment_pb2.CreatePaymentRequest(
        user_id=claims["sub"], amount=2500, currency="EUR", idempotency_key="order-42"
    )
    first = await system.payments.CreatePayment(request)
    retry = await system.payments.CreatePayment(request)
    assert retry.payment_id == first.payment_id

    listed = await system.payments.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=user.user_id)
    )
    assert [p.payment_id for p in listed.payments] == [first.payment_id]
    assert listed.payments[0].amount == 2500
    assert listed.payments[0].idempotency_key == "order-42"

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.auth.Login(auth_pb2.LoginRequest(email="ada@example.com", password="wrong!!!"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_usersvc_down_gives_unavailable(system: System) -> None:
    user = await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="bob@example.com", password="correct horse")
    )
    await system.users_app.stop(0)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.payments.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=user.user_id, amount=1)
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "usersvc" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.auth.Login(
            auth_pb2.LoginRequest(email="bob@example.com", password="correct horse")
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
