"""Wiring: signing key, pool, migrations, usersvc channel, servicer and gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.admission import RateLimiter
from libs.platform.app import ServiceApp, Wiring
from libs.platform.auth.keys import load_trusted_service_keys
from libs.platform.auth.verification import AuthInterceptor, TokenFailureLimit, TokenVerifier
from libs.platform.server import ServiceRegistration
from services.authsvc.config import Settings
from services.authsvc.devices import DeviceTokens
from services.authsvc.keys import KeyRing, SigningKey, load_key_ring
from services.authsvc.service import AuthService
from services.authsvc.store import RefreshTokenStore
from services.authsvc.throttle import LoginThrottle, Policy
from services.authsvc.tokens import TokenIssuer
from user.v1 import user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# Users log in with no token; only RevokeUserSessions (internal) needs a service token.
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{m}" for m in ("Login", "RefreshToken", "Logout", "GetJwks")
)


def throttle_policy(settings: Settings) -> Policy:
    return Policy(
        free_failures=settings.login_free_failures,
        backoff_base_seconds=settings.login_backoff_base_seconds,
        backoff_max_seconds=settings.login_backoff_max_seconds,
        pair_memory_seconds=settings.login_pair_memory_seconds,
        max_failures_per_account=settings.login_max_failures_per_account,
        account_window_seconds=settings.login_account_window_seconds,
        max_failures_per_address=settings.login_max_failures_per_address,
        address_window_seconds=settings.login_throttle_window_seconds,
        known_address_seconds=round(settings.login_known_address_days * 86400),
    )


@dataclass
class AuthApp(ServiceApp):
    keys: KeyRing

    @property
    def signing_key(self) -> SigningKey:
        return self.keys.signing


async def start(settings: Settings) -> AuthApp:
    # Load the key first: a bad key file should fail before touching the database.
    keys = load_key_ring(settings.auth_signing_key_file, settings.auth_verification_key_files)
    # VerifyCredentials is internal to usersvc: authsvc calls it with its service token.
    outgoing = settings.outgoing("authsvc", "usersvc")
    # Service tokens only (usersvc's, for RevokeUserSessions): authsvc issues user tokens,
    # it never needs to accept them.
    verifier = TokenVerifier(
        service_name="authsvc",
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        jwks=None,
        trusted_services=load_trusted_service_keys(settings.trusted_service_keys),
    )
    async with Wiring(settings, MIGRATIONS) as wiring:
        users_channel = wiring.channel(settings.usersvc_addr, outgoing)
        pool = wiring.pool
        servicer = AuthService(
            RefreshTokenStore(pool, settings.db_acquire_timeout_seconds),
            user_pb2_grpc.UserServiceStub(users_channel),
            TokenIssuer(
                keys.signing,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                ttl_seconds=settings.access_token_ttl_seconds,
            ),
            users_timeout=settings.usersvc_timeout_seconds,
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            keys=keys,
            throttle=LoginThrottle(
                pool, throttle_policy(settings), settings.db_acquire_timeout_seconds
            ),
            token_calls=RateLimiter(settings.token_call_burst, settings.token_calls_per_second),
            devices=DeviceTokens(
                keys,
                issuer=settings.auth_issuer,
                ttl_seconds=round(settings.login_device_token_days * 86400),
            ),
        )
        server = await wiring.serve(
            ServiceRegistration(
                SERVICE_NAME, auth_pb2_grpc.add_AuthServiceServicer_to_server, servicer
            ),
            interceptors=[
                AuthInterceptor(verifier, PUBLIC_METHODS, failure_limit=TokenFailureLimit())
            ],
        )
        return AuthApp(server, pool, wiring.hand_over(), keys)
