"""All three services in-process on ephemeral ports, each with its own database, wired as
tools/local/run.py wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.auth.keys import private_pem
from libs.platform.testing.net import free_port, ipv6_loopback
from libs.platform.testing.security import ServiceKeys, bearer
from payment.v1 import payment_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from user.v1 import user_pb2, user_pb2_grpc

PASSWORD = "correct horse"
# Cheap argon2 keeps the suite fast; the flood test needs the production cost.
CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}


@dataclass
class System:
    users_app: userapp.UserApp
    users: user_pb2_grpc.UserServiceAsyncStub
    payments: payment_pb2_grpc.PaymentServiceAsyncStub
    auth: auth_pb2_grpc.AuthServiceAsyncStub
    auth_app: authapp.AuthApp
    auth_settings: AuthSettings
    keys: ServiceKeys  # callers of usersvc (authsvc, paymentsvc)
    # authsvc seen from a second caller address (::1), or None without IPv6.
    auth_other_address: auth_pb2_grpc.AuthServiceStub | None = None
    payments_port: int = 0

    @property
    def users_addr(self) -> str:
        return f"127.0.0.1:{self.users_app.port}"


@asynccontextmanager
async def running_system(
    new_database: Callable[[], Awaitable[str]],
    tmp_path: Path,
    *,
    argon2: dict[str, Any] | None = None,
    usersvc_timeout_seconds: float = 1.0,
) -> AsyncIterator[System]:
    # As tools/local/run.py does: a signing key for authsvc, a key per calling service;
    # usersvc trusts authsvc's and paymentsvc's, authsvc trusts usersvc's.
    keys = ServiceKeys(tmp_path / "callers-of-usersvc")
    keys.directory.mkdir()
    keys.add("authsvc")
    keys.add("paymentsvc")
    to_authsvc = ServiceKeys(tmp_path / "callers-of-authsvc")
    to_authsvc.directory.mkdir()
    to_authsvc.add("usersvc")
    signing = tmp_path / "signing.pem"
    signing.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    # authsvc's port is fixed up front: usersvc and paymentsvc fetch its keys from there,
    # and the rotation test restarts it on the same address.
    auth_port = free_port()
    auth_addr = f"127.0.0.1:{auth_port}"
    users = await userapp.start(
        UserSettings(
            database_url=await new_database(),
            grpc_port=0,
            grpc_host="127.0.0.1",
            authsvc_addr=auth_addr,
            trusted_service_keys=str(keys.trusted_dir),
            service_key_file=to_authsvc.key_file("usersvc"),
            jwks_min_refresh_seconds=0.0,
            **(CHEAP_ARGON2 if argon2 is None else argon2),
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
    dual_stack = ipv6_loopback()
    auth_settings = AuthSettings(
        database_url=await new_database(),
        grpc_port=auth_port,
        # Both loopbacks where IPv6 exists: two caller addresses for the throttling tests.
        grpc_host="[::]" if dual_stack else "127.0.0.1",
        usersvc_addr=users_addr,
        usersvc_timeout_seconds=usersvc_timeout_seconds,
        auth_signing_key_file=str(signing),
        service_key_file=keys.key_file("authsvc"),
        trusted_service_keys=str(to_authsvc.trusted_dir),
    )
    auth = await authapp.start(auth_settings)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in (users, payments, auth)]
    if dual_stack:
        channels.append(grpc.aio.insecure_channel(f"[::1]:{auth_port}"))
    system = System(
        users,
        user_pb2_grpc.UserServiceStub(channels[0]),
        payment_pb2_grpc.PaymentServiceStub(channels[1]),
        auth_pb2_grpc.AuthServiceStub(channels[2]),
        auth,
        auth_settings,
        keys,
        auth_pb2_grpc.AuthServiceStub(channels[3]) if dual_stack else None,
        payments.port,
    )
    try:
        yield system
    finally:
        for ch in channels:
            await ch.close()
        for a in (system.auth_app, payments, users):
            await a.stop(0)


async def sign_up_and_log_in(
    system: System, email: str, password: str = PASSWORD
) -> tuple[str, tuple[tuple[str, str], ...]]:
    user = await system.users.CreateUser(user_pb2.CreateUserRequest(email=email, password=password))
    login = await system.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    return user.user_id, bearer(login.token)


@pytest.fixture
async def system(new_database, tmp_path) -> AsyncIterator[System]:
    """The three services for one test (a pytest fixture: import it into a conftest)."""
    async with running_system(new_database, tmp_path) as running:
        yield running
