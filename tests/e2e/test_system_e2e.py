"""All three services in-process on ephemeral ports, each with its own database."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.auth import private_pem
from libs.platform.testing.security import ServiceKeys, bearer, expect_refused
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from user.v1 import user_pb2, user_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class System:
    users_app: userapp.UserApp
    users: user_pb2_grpc.UserServiceStub
    payments: payment_pb2_grpc.PaymentServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    auth_app: authapp.AuthApp
    auth_settings: AuthSettings
    keys: ServiceKeys


@pytest.fixture
async def system(new_database, tmp_path) -> AsyncIterator[System]:
    # As tools/local/run.py does: a signing key for authsvc, a key per calling service, and
    # usersvc trusting the public halves of the callers' keys.
    keys = ServiceKeys(tmp_path)
    keys.add("authsvc")
    keys.add("paymentsvc")
    signing = tmp_path / "signing.pem"
    signing.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    # authsvc's port is fixed up front: usersvc and paymentsvc fetch its keys from there,
    # and the rotation test restarts it on the same address.
    auth_addr = f"127.0.0.1:{free_port()}"
    users = await userapp.start(
        UserSettings(
            database_url=await new_database(),
            grpc_port=0,
            grpc_host="127.0.0.1",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
            authsvc_addr=auth_addr,
            trusted_service_keys=str(keys.trusted_dir),
            jwks_min_refresh_seconds=0.0,
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
            authsvc_addr=auth_addr,
            service_key_file=keys.key_file("paymentsvc"),
        )
    )
    auth_settings = AuthSettings(
        database_url=await new_database(),
        grpc_port=int(auth_addr.rsplit(":", 1)[1]),
        grpc_host="127.0.0.1",
        usersvc_addr=users_addr,
        usersvc_timeout_seconds=1.0,
        auth_signing_key_file=str(signing),
        service_key_file=keys.key_file("authsvc"),
    )
    auth = await authapp.start(auth_settings)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in (users, payments, auth)]
    system = System(
        users,
        user_pb2_grpc.UserServiceStub(channels[0]),
        payment_pb2_grpc.PaymentServiceStub(channels[1]),
        auth_pb2_grpc.AuthServiceStub(channels[2]),
        auth,
        auth_settings,
        keys,
    )
    try:
        yield system
    finally:
        for ch in channels:
            await ch.close()
        for a in (system.auth_app, payments, users):
            await a.stop(0)


async def sign_up_and_log_in(system: System, email: str) -> tuple[str, list[tuple[str, str]]]:
    user = await system.users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password="correct horse")
    )
    login = await system.auth.Login(auth_pb2.LoginRequest(email=email, password="correct horse"))
    return user.user_id, bearer(login.token)


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
    assert "usersvc" in info.value.details()
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
    await expect_refused(
        system.payments.GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=as_ann
        ),
        denied,
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
    as_payments = bearer(system.keys.token("paymentsvc", "usersvc"))
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
