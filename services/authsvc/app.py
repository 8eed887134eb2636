"""Wiring: signing key, pool, migrations, usersvc channel, servicer and gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform import clients, db
from libs.platform.migrations import apply_migrations
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from services.authsvc.config import Settings
from services.authsvc.keys import KeyRing, SigningKey, load_key_ring
from services.authsvc.service import AuthService
from services.authsvc.store import RefreshTokenStore
from services.authsvc.throttle import LoginThrottle
from services.authsvc.tokens import TokenIssuer
from user.v1 import user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


@dataclass
class AuthApp:
    server: GrpcServer
    pool: asyncpg.Pool
    users_channel: grpc.aio.Channel
    keys: KeyRing

    @property
    def signing_key(self) -> SigningKey:
        return self.keys.signing

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)
        await self.users_channel.close()
        await self.pool.close()


async def start(settings: Settings) -> AuthApp:
    # Load the key first: a bad key file should fail before touching the database.
    keys = load_key_ring(settings.auth_signing_key_file, settings.auth_verification_key_files)
    server_credentials = settings.server_credentials()
    channel_credentials = settings.channel_credentials()
    # VerifyCredentials is internal to usersvc: authsvc calls it with its service token.
    outgoing = settings.outgoing("authsvc", "usersvc")
    pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    channel = clients.open_channel(
        settings.usersvc_addr,
        credentials=channel_credentials,
        interceptors=outgoing,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
    try:
        await apply_migrations(pool, MIGRATIONS)
        servicer = AuthService(
            RefreshTokenStore(pool, settings.db_acquire_timeout_seconds),
            user_pb2_grpc.UserServiceStub(channel),
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
                pool,
                settings.login_throttle_window_seconds,
                settings.db_acquire_timeout_seconds,
            ),
            max_failures_per_account=settings.login_max_failures_per_account,
            max_failures_per_address=settings.login_max_failures_per_address,
        )
        server = await start_server(
            [
                ServiceRegistration(
                    SERVICE_NAME, auth_pb2_grpc.add_AuthServiceServicer_to_server, servicer
                )
            ],
            host=settings.grpc_host,
            port=settings.grpc_port,
            credentials=server_credentials,
            max_message_bytes=settings.grpc_max_message_bytes,
        )
        server.watch_database(pool)  # readiness follows the database
    except BaseException:
        await channel.close()
        await pool.close()
        raise
    return AuthApp(server, pool, channel, keys)
