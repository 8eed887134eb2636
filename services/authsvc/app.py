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
from services.authsvc.keys import SigningKey, load_signing_key
from services.authsvc.service import AuthService
from services.authsvc.store import RefreshTokenStore
from services.authsvc.tokens import TokenIssuer
from user.v1 import user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


@dataclass
class AuthApp:
    server: GrpcServer
    pool: asyncpg.Pool
    users_channel: grpc.aio.Channel
    signing_key: SigningKey

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)
        await self.users_channel.close()
        await self.pool.close()


async def start(settings: Settings) -> AuthApp:
    # Load the key first: a bad key file should fail before touching the database.
    key = load_signing_key(settings.auth_signing_key_file)
    pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    channel = clients.open_channel(settings.usersvc_addr)
    try:
        await apply_migrations(pool, MIGRATIONS)
        servicer = AuthService(
            RefreshTokenStore(pool, settings.db_acquire_timeout_seconds),
            user_pb2_grpc.UserServiceStub(channel),
            TokenIssuer(
                key,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                ttl_seconds=settings.access_token_ttl_seconds,
            ),
            users_timeout=settings.usersvc_timeout_seconds,
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
        )
        server = await start_server(
            [
                ServiceRegistration(
                    SERVICE_NAME, auth_pb2_grpc.add_AuthServiceServicer_to_server, servicer
                )
            ],
            host=settings.grpc_host,
            port=settings.grpc_port,
        )
    except BaseException:
        await channel.close()
        await pool.close()
        raise
    return AuthApp(server, pool, channel, key)
