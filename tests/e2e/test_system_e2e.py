"""All three services in-process on ephemeral ports, each with its own database."""

from __future__ import annotations

import dataclasses

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.v1 import auth_pb2
from libs.platform.auth.keys import private_pem
from libs.platform.testing import wire
from libs.platform.testing.grpc_errors import field_violations
from libs.platform.testing.security import bearer, expect_refused
from payment.v1 import payment_pb2
from services.authsvc import app as authapp
from user.v1 import user_pb2

from .system import System, sign_up_and_log_in


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

    md = bearer(login.token)
    request = payment_pb2.CreatePaymentRequest(
        user_id=claims["sub"], amount=2500, currency="EUR", idempotency_key="order-42"
    )
    first = await system.payments.CreatePayment(request, metadata=md)
    retry = await system.payments.CreatePayment(request, metadata=md)
    assert retry.payment_id == first.payment_id

    listed = await system.payments.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=user.user_id), metadata=md
    )
    assert [p.payment_id for p in listed.payments] == [first.payment_id]
    assert listed.payments[0].amount == 2500
    assert listed.payments[0].idempotency_key == "order-42"

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.auth.Login(auth_pb2.LoginRequest(email="ada@example.com", password="wrong!!!"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_usersvc_down_gives_unavailable(system: System) -> None:
    uid, md = await sign_up_and_log_in(system, "bob@example.com")
    await system.users_app.stop(0)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.payments.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=uid, amount=1), metadata=md
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # Retryable, and silent about the system's insides: which service is down is in the log.
    assert info.value.details() == "a backing service is temporarily unavailable; retry later"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await system.auth.Login(
            auth_pb2.LoginRequest(email="bob@example.com", password="correct horse")
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_seed_client_without_token(system: System) -> None:
    """The original (seed) client sends no token: sign-up and login still work, reads and
    payments now need the token that login returns."""
    user = await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="seed@example.com", password="correct horse")
    )
    login = await system.auth.Login(
        auth_pb2.LoginRequest(email="seed@example.com", password="correct horse")
    )
    assert login.token
    unauth = grpc.StatusCode.UNAUTHENTICATED
    await expect_refused(
        system.users.GetUser(user_pb2.GetUserRequest(user_id=user.user_id)), unauth
    )
    await expect_refused(
        system.payments.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=user.user_id, amount=1)
        ),
        unauth,
    )
    got = await system.users.GetUser(
        user_pb2.GetUserRequest(user_id=user.user_id), metadata=bearer(login.token)
    )
    assert got.email == "seed@example.com"


async def test_users_are_isolated_and_internal_rpcs_refuse_users(system: System) -> None:
    ann, as_ann = await sign_up_and_log_in(system, "ann@example.com")
    bob, as_bob = await sign_up_and_log_in(system, "bob@example.com")
    paid = await system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=bob, amount=7), metadata=as_bob
    )
    denied = grpc.StatusCode.PERMISSION_DENIED
    await expect_refused(
        system.users.GetUser(user_pb2.GetUserRequest(user_id=bob), metadata=as_ann), denied
    )
    # Bob's payment is answered as if it did not exist: no oracle for payment ids.
    await expect_refused(
        system.payments.GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=as_ann
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_refused(
        system.payments.CreatePayment(
            payment_pb2.CreatePaymentRequest(user_id=bob, amount=7), metadata=as_ann
        ),
        denied,
    )
    verify = user_pb2.VerifyCredentialsRequest(email="bob@example.com", password="correct horse")
    await expect_refused(system.users.VerifyCredentials(verify, metadata=as_ann), denied)
    await expect_refused(system.users.VerifyCredentials(verify), grpc.StatusCode.UNAUTHENTICATED)
    # paymentsvc's identity may read users but is no password oracle.
    as_payments = bearer(system.service_token("paymentsvc", "usersvc"))
    await expect_refused(system.users.VerifyCredentials(verify, metadata=as_payments), denied)
    assert ann != bob


async def test_signing_key_rotation_reaches_usersvc_without_restart(
    system: System, tmp_path
) -> None:
    """The documented procedure: new signing key, old one kept as a verification key."""
    uid, old_md = await sign_up_and_log_in(system, "rot@example.com")
    await system.users.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=old_md)
    old_kid = system.auth_app.signing_key.kid

    new_key = tmp_path / "signing-2.pem"
    new_key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    await system.auth_app.stop(0)
    rotated = dataclasses.replace(
        system.auth_settings,
        auth_signing_key_file=str(new_key),
        auth_verification_key_files=system.auth_settings.auth_signing_key_file,
    )
    system.auth_app = await authapp.start(rotated)
    assert system.auth_app.signing_key.kid != old_kid

    login = await system.auth.Login(
        auth_pb2.LoginRequest(email="rot@example.com", password="correct horse")
    )
    assert jwt.get_unverified_header(login.token)["kid"] == system.auth_app.signing_key.kid
    # usersvc (never restarted) has only the old kid cached: the unknown kid makes it refetch.
    got = await system.users.GetUser(
        user_pb2.GetUserRequest(user_id=uid), metadata=bearer(login.token)
    )
    assert got.user_id == uid
    # Tokens signed before the rotation stay valid until they expire.
    await system.users.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=old_md)
    paid = await system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=uid, amount=3), metadata=bearer(login.token)
    )
    assert paid.amount == 3


async def test_undecodable_bytes_are_invalid_argument_on_every_service(system: System) -> None:
    """Invalid UTF-8 in a string field, written by hand (no generated client can send it),
    to a public method of each service and to each one's health check: the caller's mistake,
    named by field, never UNKNOWN with a Python exception's text."""
    _, md = await sign_up_and_log_in(system, "wire@example.com")
    not_utf8 = b"caf\xe9@example.com"  # Latin-1 e-acute
    calls = [
        (system.users_app.port, "/user.v1.UserService/CreateUser", None, "email"),
        (system.auth_app.port, "/auth.v1.AuthService/Login", None, "email"),
        (system.payments_port, "/payment.v1.PaymentService/GetPayment", md, "payment_id"),
    ]
    for port, method, metadata, field in calls:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for path, name in ((method, field), ("/grpc.health.v1.Health/Check", "service")):
                err = await expect_refused(
                    wire.raw_unary(channel, path, wire.length_delimited(1, not_utf8), metadata),
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
                assert field_violations(err) == {name: "must be valid UTF-8 text"}, path
                details = (err.details() or "").lower()
                assert not any(w in details for w in ("unexpected", "error parsing")), details
