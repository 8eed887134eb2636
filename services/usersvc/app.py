"""Wiring: pool, migrations, servicer and gRPC server. Used by main.py and by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auth.v1 import auth_pb2_grpc
from libs.platform.app import ServiceApp, Wiring
from libs.platform.auth import AuthInterceptor, TokenVerifier
from libs.platform.server import ServiceRegistration
from services.usersvc.config import Settings
from services.usersvc.passwords import Passwords
from services.usersvc.service import UserService
from services.usersvc.store import UserStore
from user.v1 import user_pb2, user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Sign-up needs no token; every other method does (health and reflection are always open).
PUBLIC_METHODS = frozenset({f"/{SERVICE_NAME}/CreateUser"})


@dataclass
class UserApp(ServiceApp):
    verifier: TokenVerifier


async def start(settings: Settings) -> UserApp:
    async with Wiring(settings, MIGRATIONS) as wiring:
        # Only for authsvc's public GetJwks; keys are fetched on first use, so usersvc may
        # start before authsvc.
        authsvc_channel = wiring.channel(settings.authsvc_addr)
        verifier = settings.verifier("usersvc", auth_pb2_grpc.AuthServiceStub(authsvc_channel))
        passwords = Passwords(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
        servicer = UserService(
            UserStore(wiring.pool, settings.db_acquire_timeout_seconds), passwords
        )
        server = await wiring.serve(
            ServiceRegistration(
                SERVICE_NAME, user_pb2_grpc.add_UserServiceServicer_to_server, servicer
            ),
            interceptors=[AuthInterceptor(verifier, PUBLIC_METHODS)],
        )
        return UserApp(server, wiring.pool, wiring.hand_over(), verifier)
