"""Wiring: pool, migrations, servicer and gRPC server. Used by main.py and by tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

from auth.v1 import auth_pb2_grpc
from libs.platform import clients, db
from libs.platform.auth import AuthInterceptor, TokenVerifier
from libs.platform.migrations import apply_migrations
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from services.usersvc.config import Settings
from services.usersvc.passwords import Passwords
from services.usersvc.service import UserService
from services.usersvc.store import UserStore
from user.v1 import user_pb2, user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Sign-up needs no token; every other method does (health and reflection are always open).
PUBLIC_METHODS = frozenset({f"/{SERVICE_NAME}/CreateUser"})

log = logging.getLogger(__name__)


@dataclass
class UserApp:
    server: GrpcServer
    pool: asyncpg.Pool
    authsvc_channel: grpc.aio.Channel
    verifier: TokenVerifier

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)
        await self.authsvc_channel.close()
        await self.pool.close()


async def start(settings: Settings) -> UserApp:
    server_credentials = settings.server_credentials()
    channel_credentials = settings.channel_credentials()
    pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    # Only for authsvc's public GetJwks; keys are fetched on first use, so usersvc may start
    # before authsvc.
    authsvc_channel = clients.open_channel(
        settings.authsvc_addr,
        credentials=channel_credentials,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
    try:
        verifier = settings.verifier("usersvc", auth_pb2_grpc.AuthServiceStub(authsvc_channel))
        await apply_migrations(pool, MIGRATIONS)
        passwords = Passwords(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
        servicer = UserService(UserStore(pool, settings.db_acquire_timeout_seconds), passwords)
        server = await start_server(
            [
                ServiceRegistration(
                    SERVICE_NAME, user_pb2_grpc.add_UserServiceServicer_to_server, servicer
                )
            ],
            host=settings.grpc_host,
            port=settings.grpc_port,
            interceptors=[AuthInterceptor(verifier, PUBLIC_METHODS)],
            credentials=server_credentials,
            max_message_bytes=settings.grpc_max_message_bytes,
        )
        server.watch_database(pool)  # readiness follows the database
    except BaseException:
        await authsvc_channel.close()
        await pool.close()
        raise
    return UserApp(server, pool, authsvc_channel, verifier)
