"""All three services in-process on free ports, each with its own database, wired as
production is (libs/platform/testing/topology.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs import inventory
from libs.platform.auth.service_tokens import ServiceTokenSigner
from libs.platform.testing.net import ipv6_loopback
from libs.platform.testing.security import bearer
from libs.platform.testing.topology import Wired
from payment.v1 import payment_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc import app as userapp
from services.usersvc.config import Settings as UserSettings
from user.v1 import user_pb2, user_pb2_grpc

S = TypeVar("S")
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
    keys: Path  # the wiring's key directory: <service>.key for every caller
    # authsvc seen from a second caller address (::1), or None without IPv6.
    auth_other_address: auth_pb2_grpc.AuthServiceStub | None = None
    payments_port: int = 0

    def service_token(self, caller: str, audience: str) -> str:
        """A service token signed with `caller`'s own key, as its calls carry."""
        signer = ServiceTokenSigner.from_file(caller, str(self.keys / f"{caller}.key"))
        assert signer is not None
        return signer.token_for(audience)

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
    # Production's wiring (libs/platform/testing/topology.py), as the local run has it. The
    # ports are fixed up front, since each service is told the others' addresses; the
    # rotation test restarts authsvc on the same one.
    keys = tmp_path / "keys"
    wired = Wired.on_loopback(inventory.load(), keys, ("usersvc", "paymentsvc", "authsvc"))

    async def settings_of(cls: type[S], name: str, **values: object) -> S:
        return wired.settings(cls, name, {"database_url": await new_database(), **values})

    async with AsyncExitStack() as stack:
        # Each service is stopped however the start of a later one ends: a service left
        # running holds gRPC's threads, and the test session then never exits.
        users = await userapp.start(
            await settings_of(
                UserSettings,
                "usersvc",
                jwks_min_refresh_seconds=0.0,
                **(CHEAP_ARGON2 if argon2 is None else argon2),
            )
        )
        stack.push_async_callback(users.stop, 0)
        payments = await payapp.start(
            await settings_of(PaySettings, "paymentsvc", usersvc_timeout_seconds=1.0)
        )
        stack.push_async_callback(payments.stop, 0)
        dual_stack = ipv6_loopback()
        auth_settings = await settings_of(
            AuthSettings,
            "authsvc",
            # Both loopbacks where IPv6 exists: two caller addresses for the throttling tests.
            grpc_host="[::]" if dual_stack else "127.0.0.1",
            usersvc_timeout_seconds=usersvc_timeout_seconds,
        )
        auth = await authapp.start(auth_settings)
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in (users, payments, auth)
        ]
        if dual_stack:
            channels.append(grpc.aio.insecure_channel(f"[::1]:{wired.ports['authsvc']}"))
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

        # A test may replace authsvc (the key rotation test): stop whichever runs at the end.
        async def stop_auth() -> None:
            await system.auth_app.stop(0)

        stack.push_async_callback(stop_auth)
        for ch in channels:
            stack.push_async_callback(ch.close)
        yield system


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
