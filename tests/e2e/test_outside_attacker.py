"""The third security review's findings beyond Login, attacked as an outsider would: only
public RPCs, from more than one source address (127.0.0.2 through a SourceAddressProxy),
against the three real services. Login under a flood and the one-account flood are in
test_attacks.py."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.testing.net import SourceAddressProxy
from libs.platform.testing.security import expect_refused
from payment.v1 import payment_pb2
from user.v1 import user_pb2

from .flood import outcome
from .system import PASSWORD, System, sign_up_and_log_in

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@asynccontextmanager
async def from_another_address(port: int) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to 127.0.0.1:`port` whose connections come from 127.0.0.2."""
    async with (
        SourceAddressProxy(("127.0.0.1", port), "127.0.0.2") as proxy,
        grpc.aio.insecure_channel(proxy.address) as channel,
    ):
        yield channel


async def codes(calls: Sequence[Awaitable[object]]) -> Counter[str]:
    return Counter(await asyncio.gather(*(outcome(c) for c in calls)))


async def test_junk_refresh_and_logout_calls_are_refused_per_address(system: System) -> None:
    """200 concurrent junk RefreshToken calls from one address made authsvc shed real users
    (legitimate RefreshToken 80% OK)."""
    await sign_up_and_log_in(system, "owner@x.io")
    async with from_another_address(system.auth_app.port) as channel:
        owner = auth_pb2_grpc.AuthServiceStub(channel)
        login = await owner.Login(auth_pb2.LoginRequest(email="owner@x.io", password=PASSWORD))
        junk = [
            system.auth.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=secrets.token_urlsafe(32))
            )
            for _ in range(100)
        ] + [
            system.auth.Logout(auth_pb2.LogoutRequest(refresh_token=secrets.token_urlsafe(32)))
            for _ in range(100)
        ]
        flood = await codes(junk)
        assert flood[EXHAUSTED.name] >= 100, flood  # TOKEN_CALL_BURST (60) then 10/s
        assert set(flood) <= {"OK", "UNAUTHENTICATED", EXHAUSTED.name}, flood
        fresh = await owner.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
    assert fresh.token


async def test_a_stolen_access_token_is_no_email_oracle(system: System) -> None:
    """UpdateUser(email) answered ALREADY_EXISTS for every registered address, 300 probes
    in 0.8 s, with nothing but an access token."""
    await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="registered@x.io", password=PASSWORD)
    )
    uid, stolen = await sign_up_and_log_in(system, "thief-victim@x.io")

    def probe(current_password: str) -> Awaitable[object]:
        return system.users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user_id=uid, email="registered@x.io", current_password=current_password
            ),
            metadata=stolen,
        )

    await expect_refused(probe(""), INVALID)
    answers = [await outcome(probe(f"guess {i}")) for i in range(12)]
    # Each guess costs a try at the password: 5 at once, then one per 3 minutes; without the
    # password the probe never reaches the question whether the address is taken.
    assert "ALREADY_EXISTS" not in answers, answers
    assert answers[:5] == ["PERMISSION_DENIED"] * 5, answers
    assert set(answers[5:]) == {EXHAUSTED.name}, answers


async def test_one_account_cannot_flood_payments(system: System) -> None:
    """500 payments in 0.6 s from one free account, and one amount cap for every currency."""
    uid, md = await sign_up_and_log_in(system, "spender@x.io")
    flood: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(6):  # 25 at a time: within USER_MAX_IN_FLIGHT (32), which refuses more
        flood += await codes(
            [
                system.payments.CreatePayment(
                    payment_pb2.CreatePaymentRequest(user_id=uid, amount=1), metadata=md
                )
                for _ in range(25)
            ]
        )
    took = time.monotonic() - started
    # PAYMENT_BURST (60) at once, then PAYMENTS_PER_SECOND (10).
    assert 60 <= flood["OK"] <= 60 + 10 * took + 1, (flood, took)
    assert flood[EXHAUSTED.name] == 150 - flood["OK"], flood
    other, other_md = await sign_up_and_log_in(system, "bystander@x.io")
    paid = await system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=other, amount=1), metadata=other_md
    )
    assert paid.payment_id
    # The cap is 10^9 major units of the payment's own currency: 10^9 + 1 yen is refused,
    # the same number of minor units of dinar (10^6 KWD, 3 decimals) is not.
    cap = 10**9 + 1
    await expect_refused(
        system.payments.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=other, amount=cap, currency="JPY"),
            metadata=other_md,
        ),
        INVALID,
    )
    kwd = await system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=other, amount=cap, currency="KWD"),
        metadata=other_md,
    )
    assert kwd.payment_id


async def test_health_floods_are_refused_per_address(system: System) -> None:
    """Health and reflection were never shed, so a flood of them raised everyone's p99."""
    port = system.users_app.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        flood = await codes([health.Check(health_pb2.HealthCheckRequest()) for _ in range(120)])
    assert flood[EXHAUSTED.name] >= 60, flood  # BUILTIN_SERVICES_BURST (40), then 20/s
    # The service's own methods are not held by it...
    created = await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="z@x.io", password=PASSWORD)
    )
    assert created.user_id
    # ...and neither is another address's probe.
    async with from_another_address(port) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_keys_and_currencies_are_plain_text(system: System) -> None:
    """Idempotency keys took control characters and ANSI escapes; currency codes went
    through Unicode upper() (`uſd` became USD)."""
    uid, md = await sign_up_and_log_in(system, "typist@x.io")
    for request in (
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=5, idempotency_key="k\x1b[31m"),
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=5, idempotency_key="k\n2"),
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=5, currency="u\u017fd"),
    ):
        await expect_refused(system.payments.CreatePayment(request, metadata=md), INVALID)
    paid = await system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=5, currency="usd"), metadata=md
    )
    assert paid.currency == "USD"
