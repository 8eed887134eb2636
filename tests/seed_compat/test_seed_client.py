"""A client compiled from the seed's original protos talks to the running system.

The stubs here come from seed_protos/ (same packages and field numbers as the Go system,
none of our additions), so this is what an old client sees on the wire. The system is
started exactly as the README's run command does, as separate processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs import inventory
from libs.platform.testing.net import free_port_block
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

PASSWORD = "correct horse battery"


@dataclass
class System:
    users: user_pb2_grpc.UserServiceStub
    payments: payment_pb2_grpc.PaymentServiceStub
    auth: auth_pb2_grpc.AuthServiceStub


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    # The runner puts every service of the inventory on consecutive ports from the base.
    names = inventory.load().names()
    base = free_port_block(len(names))
    cmd = [os.environ["RUN_BINARY"], "--base-port", str(base), "--metrics-base-port", "0"]
    proc = subprocess.Popen(  # noqa: S603 - our own binary
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    up = threading.Event()
    output: list[str] = []

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "local system is up" in line:
                up.set()

    threading.Thread(target=drain, daemon=True).start()
    channels: list[grpc.Channel] = []
    try:
        if not up.wait(timeout=120):
            raise RuntimeError("system did not come up:\n" + "".join(output[-40:]))

        def channel(name: str) -> grpc.Channel:
            channels.append(grpc.insecure_channel(f"127.0.0.1:{base + names.index(name)}"))
            return channels[-1]

        yield System(
            users=user_pb2_grpc.UserServiceStub(channel("usersvc")),
            payments=payment_pb2_grpc.PaymentServiceStub(channel("paymentsvc")),
            auth=auth_pb2_grpc.AuthServiceStub(channel("authsvc")),
        )
    finally:
        for ch in channels:
            ch.close()
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=60) == 0, "".join(output[-40:])
        finally:
            if proc.poll() is None:
                proc.kill()


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def _signup(system: System) -> tuple[user_pb2.CreateUserResponse, str, str]:
    email = f"seed-{uuid.uuid4().hex[:12]}@example.com"
    created = system.users.CreateUser(
        user_pb2.CreateUserRequest(email=f"  {email.upper()} ", password=PASSWORD), timeout=10
    )
    login = system.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=10)
    return created, email, login.token


def test_create_user_then_get_user_round_trips(system: System) -> None:
    created, email, token = _signup(system)
    assert uuid.UUID(created.user_id)
    assert created.email.lower() == email  # trimmed, case kept as given
    assert created.created_at.seconds > 0

    got = system.users.GetUser(
        user_pb2.GetUserRequest(user_id=created.user_id),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=10,
    )
    assert got.user_id == created.user_id
    assert got.email == created.email
    assert got.created_at == created.created_at
    assert got.updated_at.seconds >= got.created_at.seconds


def test_create_user_errors(system: System) -> None:
    _, email, _ = _signup(system)
    duplicate = user_pb2.CreateUserRequest(email=email.upper(), password=PASSWORD)
    assert _code(lambda: system.users.CreateUser(duplicate, timeout=10)) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    bad_email = user_pb2.CreateUserRequest(email="not-an-email", password=PASSWORD)
    assert _code(lambda: system.users.CreateUser(bad_email, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    empty_password = user_pb2.CreateUserRequest(email=f"x{email}", password="")
    assert _code(lambda: system.users.CreateUser(empty_password, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_login_gives_a_signed_token_and_one_answer_for_bad_credentials(system: System) -> None:
    _, email, token = _signup(system)
    assert token.count(".") == 2  # a JWS compact token

    def login(e: str, p: str) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as err:
            system.auth.Login(auth_pb2.LoginRequest(email=e, password=p), timeout=10)
        return err.value

    wrong_password = login(email, "not the password")
    unknown_email = login(f"nobody-{uuid.uuid4().hex}@example.com", PASSWORD)
    assert wrong_password.code() == unknown_email.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.details() == unknown_email.details()


def test_get_user_errors(system: System) -> None:
    created, _, token = _signup(system)
    other, _, _ = _signup(system)
    auth = (("authorization", f"Bearer {token}"),)
    own = user_pb2.GetUserRequest(user_id=created.user_id)
    assert _code(lambda: system.users.GetUser(own, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    someone_else = user_pb2.GetUserRequest(user_id=other.user_id)
    assert _code(lambda: system.users.GetUser(someone_else, metadata=auth, timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    malformed = user_pb2.GetUserRequest(user_id="not-a-uuid")
    assert _code(lambda: system.users.GetUser(malformed, metadata=auth, timeout=10)) in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
    )


def test_create_payment_with_only_the_seed_fields(system: System) -> None:
    created, _, token = _signup(system)
    auth = (("authorization", f"Bearer {token}"),)
    paid = system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=created.user_id, amount=1250),
        metadata=auth,
        timeout=10,
    )
    assert uuid.UUID(paid.payment_id)

    again = system.payments.CreatePayment(
        payment_pb2.CreatePaymentRequest(user_id=created.user_id, amount=1250),
        metadata=auth,
        timeout=10,
    )
    # Without an idempotency key (the seed has none) each call is a new payment.
    assert again.payment_id != paid.payment_id


def test_create_payment_errors(system: System) -> None:
    created, _, token = _signup(system)
    other, _, _ = _signup(system)
    auth = (("authorization", f"Bearer {token}"),)
    for amount in (0, -5):
        request = payment_pb2.CreatePaymentRequest(user_id=created.user_id, amount=amount)
        assert _code(
            lambda r=request: system.payments.CreatePayment(r, metadata=auth, timeout=10)
        ) == (grpc.StatusCode.INVALID_ARGUMENT)
    for_other = payment_pb2.CreatePaymentRequest(user_id=other.user_id, amount=100)
    assert _code(lambda: system.payments.CreatePayment(for_other, metadata=auth, timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    anonymous = payment_pb2.CreatePaymentRequest(user_id=created.user_id, amount=100)
    assert _code(lambda: system.payments.CreatePayment(anonymous, timeout=10)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
