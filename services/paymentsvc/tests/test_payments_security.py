"""Authentication, authorization and hostile input against a real paymentsvc (real PostgreSQL).

usersvc and authsvc's key endpoint are stand-ins here (the real trio runs in tests/e2e).
"""

from __future__ import annotations

import grpc
import jwt

from libs.platform.testing.security import (
    HOSTILE,
    SQL_METACHARACTERS,
    bearer,
    expect_refused,
)
from payment.v1 import payment_pb2

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_every_method_requires_a_token(anon, users, jwks) -> None:
    uid = users.add()
    expired = jwks.mint(uid, ttl=-3600)
    calls = [
        lambda md: anon.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=uid, amount=1), metadata=md
        ),
        lambda md: anon.GetPayment(payment_pb2.GetPaymentRequest(payment_id=uid), metadata=md),
        lambda md: anon.ListPayments(payment_pb2.ListPaymentsRequest(user_id=uid), metadata=md),
    ]
    for call in calls:
        await expect_refused(call(None), UNAUTH)
        await expect_refused(call(bearer(expired)), UNAUTH)
        await expect_refused(call(bearer("garbage")), UNAUTH)
        await expect_refused(call(bearer(jwks.mint(uid, aud="usersvc"))), UNAUTH)
    assert users.calls == 0  # refused before any work was done


async def test_user_pays_and_reads_only_their_own(anon, users, jwks) -> None:
    ann, bob = users.add(), users.add()
    as_ann, as_bob = bearer(jwks.mint(ann)), bearer(jwks.mint(bob))
    paid = await anon.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=ann, amount=500), metadata=as_ann
    )
    got = await anon.GetPayment(
        payment_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=as_ann
    )
    assert got.payment.user_id == ann
    await expect_refused(
        anon.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=ann, amount=500), metadata=as_bob
        ),
        DENIED,
    )
    await expect_refused(
        anon.GetPayment(payment_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=as_bob),
        DENIED,
    )
    await expect_refused(
        anon.ListPayments(payment_pb2.ListPaymentsRequest(user_id=ann), metadata=as_bob), DENIED
    )
    mine = await anon.ListPayments(payment_pb2.ListPaymentsRequest(user_id=bob), metadata=as_bob)
    assert list(mine.payments) == []


async def test_usersvc_is_called_with_paymentsvc_service_token(anon, users, jwks, service_keys):
    uid = users.add()
    await anon.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=1), metadata=bearer(jwks.mint(uid))
    )
    scheme, _, token = users.authorizations[-1].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(
        token,
        service_keys.private["paymentsvc"].public_key(),
        algorithms=["EdDSA"],
        audience="usersvc",
        issuer="service:paymentsvc",
    )
    assert claims["sub"] == "service:paymentsvc"
    assert claims["exp"] - claims["iat"] <= 120


async def test_sql_metacharacters_in_every_string_field(anon, users, jwks, paymentsvc) -> None:
    uid = users.add()
    md = bearer(jwks.mint(uid))
    stored = 0
    for i, text in enumerate(SQL_METACHARACTERS):
        request = payment_pb2.CreatePaymentRequest(
            user_id=uid, amount=100 + i, idempotency_key=f"k{i}{text}", description=text
        )
        try:
            created = await anon.CreatePayment(request, metadata=md)
        except grpc.aio.AioRpcError as err:
            assert err.code() == INVALID, err.details()
            assert "\x00" in text
            HOSTILE.record(err.code())
            continue
        HOSTILE.record(grpc.StatusCode.OK)
        stored += 1
        got = await anon.GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=created.payment_id), metadata=md
        )
        assert got.payment.description == text
        assert got.payment.idempotency_key == f"k{i}{text}"
        for call in (
            anon.CreatePayment(
                payment_pb2.CreatePaymentRequest(user_id=text, amount=1), metadata=md
            ),
            anon.CreatePayment(
                payment_pb2.CreatePaymentRequest(user_id=uid, amount=1, currency=text),
                metadata=md,
            ),
            anon.GetPayment(payment_pb2.GetPaymentRequest(payment_id=text), metadata=md),
            anon.ListPayments(payment_pb2.ListPaymentsRequest(user_id=text), metadata=md),
            anon.ListPayments(
                payment_pb2.ListPaymentsRequest(user_id=uid, page_token=text), metadata=md
            ),
        ):
            await expect_refused(call, INVALID)
    assert stored == len([t for t in SQL_METACHARACTERS if "\x00" not in t])
    assert await paymentsvc.pool.fetchval("SELECT count(*) FROM payments") == stored


async def test_amount_and_size_limits(anon, users, jwks) -> None:
    uid = users.add()
    md = bearer(jwks.mint(uid))
    for amount in (0, -1, 1_000_000_000_001, 2**63 - 1, -(2**63)):
        await expect_refused(
            anon.CreatePayment(
                payment_pb2.CreatePaymentRequest(user_id=uid, amount=amount), metadata=md
            ),
            INVALID,
        )
    await expect_refused(
        anon.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=uid, amount=1, description="x" * 2_000_000),
            metadata=md,
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    await expect_refused(
        anon.CreatePayment(
            payment_pb2.CreatePaymentRequest(
                user_id=uid, amount=1, description="x" * 501, idempotency_key="k" * 129
            ),
            metadata=md,
        ),
        INVALID,
    )
