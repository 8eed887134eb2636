"""Authentication, authorization and hostile input against a real paymentsvc (real PostgreSQL).

usersvc and authsvc's key endpoint are stand-ins here (the real trio runs in tests/e2e).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_status import rpc_status

from libs.platform.testing import wire
from libs.platform.testing.grpc_errors import field_violations
from libs.platform.testing.security import (
    HOSTILE,
    SQL_METACHARACTERS,
    bearer,
    expect_refused,
)
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc import app

from .conftest import make_settings

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
# Words that only a server fault or an internal exception would put in an answer.
INTERNALS = ("internal", "unexpected", "exception", "error parsing", "decodeerror", "<class")


def assert_no_internals(err: grpc.aio.AioRpcError) -> None:
    details = (err.details() or "").lower()
    assert not [w for w in INTERNALS if w in details], err.details()


async def test_every_method_requires_a_token(anon, users, jwks) -> None:
    uid = users.add()
    expired = jwks.mint(uid, ttl=-3600)
    calls: list[Callable[[Any], Awaitable[Any]]] = [
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
    # Someone else's payment looks missing (see the oracle test below), not forbidden.
    await expect_refused(
        anon.GetPayment(payment_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=as_bob),
        NOT_FOUND,
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


# ---------------------------------------------------------------- crafted page tokens


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_like(real: str, **changes: object) -> str:
    """A token made the way an attacker would: decode a real one, change it, encode it."""
    payload = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    payload.update(changes)
    return _b64(json.dumps(payload).encode())


# Each is a page token no server made, all accepted by the JSON and base64 layers.
CRAFTED_TOKENS: dict[str, dict[str, object]] = {
    # Valid ISO 8601, but 23:59 east of UTC on 1 January of year 1 is in year 0 in UTC.
    "year 1 ahead of UTC": {"t": "0001-01-01T00:00:00+23:59"},
    "year 9999 behind UTC": {"t": "9999-12-31T23:59:59-23:59"},
    "no time zone": {"t": "2024-01-01T00:00:00"},
    "not a time": {"t": "yesterday"},
    "time as a number": {"t": 1700000000},
    "id not a uuid": {"i": "1 OR 1=1"},
    "id as a list": {"i": []},
    "scope as an object": {"s": {}},
    "extra key": {"x": 1},
}


async def test_crafted_page_tokens_are_invalid_argument(anon, users, jwks) -> None:
    """ListPayments once answered INTERNAL to `0001-01-01T00:00:00+23:59` in a token: the
    database driver's conversion to UTC overflowed. Every token must be checked first."""
    uid = users.add()
    md = bearer(jwks.mint(uid))
    for amount in (1, 2):
        await anon.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=uid, amount=amount), metadata=md
        )
    first = await anon.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=uid, page_size=1), metadata=md
    )
    real = first.next_page_token
    assert real
    tokens = {name: _token_like(real, **changes) for name, changes in CRAFTED_TOKENS.items()}
    tokens["a JSON list"] = _b64(b"[1, 2]")
    tokens["not UTF-8"] = _b64(b"\xff\xfe{}")
    tokens["not ASCII"] = "é" + real
    tokens["too long"] = real * 10
    for name, token in tokens.items():
        err = await expect_refused(
            anon.ListPayments(
                payment_pb2.ListPaymentsRequest(user_id=uid, page_size=1, page_token=token),
                metadata=md,
            ),
            INVALID,
        )
        # What to do about it, in words a person can act on, and nothing internal.
        assert "next_page_token" in field_violations(err)["page_token"], name
        assert_no_internals(err)
    # The real token still pages on.
    second = await anon.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=uid, page_size=1, page_token=real), metadata=md
    )
    assert len(second.payments) == 1


# ---------------------------------------------------------------- bytes that do not parse

CREATE = "/payment.v1.PaymentService/CreatePayment"
GET = "/payment.v1.PaymentService/GetPayment"


async def test_invalid_utf8_on_the_wire_is_invalid_argument(
    anon_channel, users, jwks, paymentsvc
) -> None:
    """Generated clients cannot send invalid UTF-8 in a string field; an attacker writes the
    bytes by hand. The answer used to be UNKNOWN with Python's DecodeError text."""
    uid = users.add()
    md = bearer(jwks.mint(uid))
    channel = anon_channel
    create = (
        wire.length_delimited(1, uid.encode())
        + wire.varint(2, 100)
        + wire.length_delimited(5, b"caf\xe9 au lait")  # Latin-1 e-acute: not UTF-8
    )
    err = await expect_refused(wire.raw_unary(channel, CREATE, create, md), INVALID)
    assert field_violations(err) == {"description": "must be valid UTF-8 text"}
    assert_no_internals(err)
    err = await expect_refused(
        wire.raw_unary(channel, GET, wire.length_delimited(1, b"\xc0\xaf"), md), INVALID
    )
    assert "payment_id" in field_violations(err)
    # Not protobuf at all (a length running past the end): no field to name, still the
    # caller's mistake, and the answer says what the server expected.
    err = await expect_refused(wire.raw_unary(channel, GET, b"\x0a\x05ab", md), INVALID)
    assert "payment.v1.GetPaymentRequest" in err.details()
    assert_no_internals(err)
    # Authentication still comes first: without a token the bytes are never looked at.
    await expect_refused(wire.raw_unary(channel, CREATE, create), UNAUTH)
    assert users.calls == 0
    assert await paymentsvc.pool.fetchval("SELECT count(*) FROM payments") == 0


# ---------------------------------------------------------------- existence oracle


async def test_other_users_payment_is_indistinguishable_from_a_missing_one(
    anon, users, jwks
) -> None:
    """GetPayment once answered PERMISSION_DENIED for another user's payment and NOT_FOUND
    for an unknown id, so any user could test which payment ids exist."""
    ann, mallory = users.add(), users.add()
    paid = await anon.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=ann, amount=500),
        metadata=bearer(jwks.mint(ann)),
    )
    as_mallory = bearer(jwks.mint(mallory))
    unknown = str(uuid.uuid4())
    answers = []
    for payment_id in (paid.payment_id, unknown):
        err = await expect_refused(
            anon.GetPayment(
                payment_pb2.GetPaymentRequest(payment_id=payment_id), metadata=as_mallory
            ),
            NOT_FOUND,
            DENIED,
        )
        # Everything the caller sees (code, message, rich status), minus the id it sent.
        rich = rpc_status.from_call(err)
        answers.append(
            (
                err.code(),
                (err.details() or "").replace(payment_id, "<id>"),
                rich and (rich.message.replace(payment_id, "<id>"), list(rich.details)),
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == NOT_FOUND


# ---------------------------------------------------------------- who is trusted


def _forged_service_token(name: str) -> str:
    """A service token for `name` signed with the attacker's own key."""
    key = Ed25519PrivateKey.generate()
    iss = f"service:{name}"
    now = 1_700_000_000
    claims = {"iss": iss, "sub": iss, "aud": "paymentsvc", "iat": now, "exp": now + 10**9}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": iss})


async def test_forged_service_tokens_do_not_reveal_which_services_are_trusted(anon) -> None:
    """A forged token for a trusted service name (opsctl, in these tests) and one for a name
    nobody trusts must be refused alike; otherwise the error text lists the callee's
    trusted services one guess at a time."""
    answers = []
    for name in ("opsctl", "no-such-service"):
        err = await expect_refused(
            anon.GetPayment(
                payment_pb2.GetPaymentRequest(payment_id=str(uuid.uuid4())),
                metadata=bearer(_forged_service_token(name)),
            ),
            UNAUTH,
        )
        answers.append(err.details())
    assert answers[0] == answers[1]
    assert "paymentsvc" not in answers[1]


async def test_payments_per_user_are_rate_limited(
    database_url, fake_users, jwks, service_keys
) -> None:
    """Third round: one free account created 500 payments in 0.6 s. Each user now has a
    bucket (PAYMENT_BURST, PAYMENTS_PER_SECOND); other users and services are not held."""
    settings = dataclasses.replace(
        make_settings(database_url, fake_users[1], jwks.port, service_keys),
        payment_burst=3,
        payments_per_second=0.01,
    )
    running = await app.start(settings)
    users = fake_users[0]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            anon = payment_pb2_grpc.PaymentServiceStub(channel)
            ann, bob = users.add(), users.add()
            as_ann, as_bob = bearer(jwks.mint(ann)), bearer(jwks.mint(bob))
            for _ in range(3):
                await anon.CreatePayment(
                    payment_pb2.CreatePaymentRequest(user_id=ann, amount=1), metadata=as_ann
                )
            err = await expect_refused(
                anon.CreatePayment(
                    payment_pb2.CreatePaymentRequest(user_id=ann, amount=1), metadata=as_ann
                ),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
            assert err.details().startswith("too many payments for this user; retry in")
            await anon.CreatePayment(
                payment_pb2.CreatePaymentRequest(user_id=bob, amount=1), metadata=as_bob
            )
        assert await running.pool.fetchval("SELECT count(*) FROM payments") == 4
    finally:
        await running.stop(0)
