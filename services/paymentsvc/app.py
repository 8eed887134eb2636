"""Wiring: pool, migrations, usersvc channel, servicer and gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

from auth.v1 import auth_pb2_grpc
from libs.platform import clients, db
from libs.platform.auth import AuthInterceptor, TokenVerifier
from libs.platform.migrations import apply_migrations
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc.config import Settings
from services.paymentsvc.service import PaymentService
from services.paymentsvc.store import PaymentStore
from user.v1 import user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


@dataclass
class PaymentApp:
    server: GrpcServer
    pool: asyncpg.Pool
    users_channel: grpc.aio.Channel
    authsvc_channel: grpc.aio.Channel
    verifier: TokenVerifier

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)
        await self.users_channel.close()
        await self.authsvc_channel.close()
        await self.pool.close()


async def start(settings: Settings) -> PaymentApp:
    server_credentials = settings.server_credentials()
    channel_credentials = settings.channel_credentials()
    # paymentsvc checks that the user exists as itself (a service), not as the caller.
    outgoing = settings.outgoing("paymentsvc", "usersvc")
    pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    channel = clients.open_channel(
        settings.usersvc_addr,
        credentials=channel_credentials,
        interceptors=outgoing,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
    authsvc_channel = clients.open_channel(
        settings.authsvc_addr,
        credentials=channel_credentials,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
    try:
        verifier = settings.verifier("paymentsvc", auth_pb2_grpc.AuthServiceStub(authsvc_channel))
        await apply_migrations(pool, MIGRATIONS)
        servicer = PaymentService(
            PaymentStore(pool, settings.db_acquire_timeout_seconds),
            user_pb2_grpc.UserServiceStub(channel),
            default_currency=settings.default_currency,
            users_timeout=settings.usersvc_timeout_seconds,
        )
        server = await start_server(
            [
                ServiceRegistration(
                    SERVICE_NAME, payment_pb2_grpc.add_PaymentServiceServicer_to_server, servicer
                )
            ],
            host=settings.grpc_host,
            port=settings.grpc_port,
            interceptors=[AuthInterceptor(verifier)],
            credentials=server_credentials,
            max_message_bytes=settings.grpc_max_message_bytes,
        )
        server.watch_database(pool)  # readiness follows the database
    except BaseException:
        await channel.close()
        await authsvc_channel.close()
        await pool.close()
        raise
    return PaymentApp(server, pool, channel, authsvc_channel, verifier)
