"""The user journey both image tests drive through the three services, whatever runs them."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Journey:
    email: str
    user_id: str
    login: auth_pb2.LoginResponse
    fetched_email: str
    payment_id: str
    listed: list[tuple[str, int, str]]  # (payment_id, amount, currency)

    def summary(self) -> str:
        return (
            f"CreateUser {self.user_id} ({self.email}); Login token {len(self.login.token)} "
            f"chars; GetUser {self.fetched_email}; CreatePayment {self.payment_id}; "
            f"ListPayments {self.listed}"
        )


LOGIN_ATTEMPTS = 3


async def _log_in(auth: auth_pb2_grpc.AuthServiceAsyncStub, email: str) -> auth_pb2.LoginResponse:
    """Login as a client should: "retry later" (UNAVAILABLE) is tried again, a few times.

    The images check passwords at production argon2 cost, and authsvc gives usersvc's check
    USERSVC_TIMEOUT_SECONDS (2 s); with the other test targets on the same two cores, one
    check in a CI run took longer (2026-12-07). Any other failure, or the same one every
    time, still fails the journey.
    """
    for attempt in range(1, LOGIN_ATTEMPTS + 1):
        try:
            return await auth.Login(
                auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == LOGIN_ATTEMPTS:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def signup_login_pay_list(channels: dict[str, grpc.aio.Channel], tag: str) -> Journey:
    """CreateUser, Login (authsvc asks usersvc), GetUser, CreatePayment, ListPayments.

    Asserts each step's answer; returns what a caller may check or print.
    """
    users = user_pb2_grpc.UserServiceStub(channels["usersvc"])
    email = f"{tag}-{uuid.uuid4().hex[:8]}@example.com"
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=PASSWORD), timeout=30
    )
    login = await _log_in(auth_pb2_grpc.AuthServiceStub(channels["authsvc"]), email)
    assert login.token and login.refresh_token
    bearer = (("authorization", f"Bearer {login.token}"),)
    got = await users.GetUser(
        user_pb2.GetUserRequest(user_id=created.user_id), metadata=bearer, timeout=10
    )
    assert (got.user_id, got.email) == (created.user_id, email)

    payments = payment_pb2_grpc.PaymentServiceStub(channels["paymentsvc"])
    paid = await payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(
            user_id=created.user_id, amount=1250, currency="EUR", idempotency_key=f"{tag}-1"
        ),
        metadata=bearer,
        timeout=10,
    )
    listed = await payments.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=created.user_id), metadata=bearer, timeout=10
    )
    assert [p.payment_id for p in listed.payments] == [paid.payment_id]
    return Journey(
        email=email,
        user_id=created.user_id,
        login=login,
        fetched_email=got.email,
        payment_id=paid.payment_id,
        listed=[(p.payment_id, p.amount, p.currency) for p in listed.payments],
    )
