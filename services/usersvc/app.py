"""Wiring: pool, migrations, servicer and gRPC server. Used by main.py and by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auth.v1 import auth_pb2_grpc
from libs.platform.admission import RateLimiter
from libs.platform.app import ServiceApp, Wiring
from libs.platform.auth.verification import AuthInterceptor, TokenVerifier
from libs.platform.server import ServiceRegistration
from services.usersvc.config import Settings
from services.usersvc.passwords import Lanes, Passwords
from services.usersvc.service import UserService
from services.usersvc.sessions import SessionRevoker
from services.usersvc.store import UserStore
from user.v1 import user_pb2, user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Sign-up needs no token; every other method does (health and reflection are always open).
PUBLIC_METHODS = frozenset({f"/{SERVICE_NAME}/CreateUser"})


@dataclass
class UserApp(ServiceApp):
    verifier: TokenVerifier
    passwords: Passwords
    sessions: SessionRevoker


async def start(settings: Settings) -> UserApp:
    async with Wiring(settings, MIGRATIONS) as wiring:
        # authsvc's public GetJwks, anonymous; keys are fetched on first use, so usersvc may
        # start before authsvc.
        authsvc_channel = wiring.channel(settings.token_issuer_addr)
        verifier = settings.verifier("usersvc", auth_pb2_grpc.AuthServiceStub(authsvc_channel))
        # RevokeUserSessions is internal to authsvc: called with usersvc's service token.
        revocations_channel = wiring.channel(
            settings.token_issuer_addr, settings.outgoing("usersvc", "authsvc")
        )
        passwords = Passwords(
            settings.argon2_time_cost,
            settings.argon2_memory_kib,
            settings.argon2_parallelism,
            Lanes(
                accounts_workers=settings.hash_signup_workers,
                accounts_queue=settings.hash_signup_queue,
                logins_workers=settings.hash_login_workers,
                logins_queue=settings.hash_login_queue,
            ),
        )
        wiring.on_close(passwords.close)
        store = UserStore(wiring.pool, settings.db_acquire_timeout_seconds)
        sessions = SessionRevoker(
            store,
            auth_pb2_grpc.AuthServiceStub(revocations_channel),
            timeout=settings.authsvc_timeout_seconds,
            retry_seconds=settings.session_revocation_retry_seconds,
        )
        servicer = UserService(
            store,
            passwords,
            sessions,
            signups=RateLimiter(settings.signup_burst, settings.signup_per_minute / 60),
            password_changes=RateLimiter(
                settings.password_change_burst, settings.password_change_per_minute / 60
            ),
            email_changes=RateLimiter(
                settings.email_change_burst, settings.email_changes_per_hour / 3600
            ),
        )
        server = await wiring.serve(
            ServiceRegistration(
                SERVICE_NAME, user_pb2_grpc.add_UserServiceServicer_to_server, servicer
            ),
            interceptors=[
                AuthInterceptor(
                    verifier,
                    PUBLIC_METHODS,
                    max_in_flight_per_user=settings.user_max_in_flight or None,
                    failure_limit=settings.token_failure_limit(),
                )
            ],
        )
        # After the migrations (serve() applies them): the task reads session_revocations.
        wiring.background("session revocations", sessions.run)
        return UserApp(server, wiring.pool, wiring.hand_over(), verifier, passwords, sessions)
