"""What every service's start() shares: pool, channels, migrations, server, and cleanup.

A service states only what is its own (servicer, interceptors, which services it calls);
`Wiring` opens the rest so that a failure anywhere in start() closes whatever was already
opened, and a running `ServiceApp` closes it all after the server has drained.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

import asyncpg
import grpc

from libs.platform import clients, db
from libs.platform.builtin_limits import BuiltinLimits
from libs.platform.migrations import apply_migrations
from libs.platform.overload.core import CoreLimits
from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.queue import QueuePolicy
from libs.platform.overload.retries import RetryCollector, RetryInterceptor, RetryPolicy, RetryStats
from libs.platform.server import GrpcServer, ServiceRegistration, start_server


class WiringSettings(Protocol):
    """What Wiring reads: libs/platform/settings.py's ServiceSettings has all of it."""

    @property
    def database_url(self) -> str: ...
    @property
    def db_pool_max_size(self) -> int: ...
    @property
    def grpc_host(self) -> str: ...
    @property
    def grpc_port(self) -> int: ...
    @property
    def grpc_max_message_bytes(self) -> int: ...
    @property
    def overload_retry_after_seconds(self) -> float: ...
    def server_credentials(self) -> grpc.ServerCredentials | None: ...
    def channel_credentials(self) -> grpc.ChannelCredentials | None: ...
    def limit_policy(self) -> LimitPolicy | None: ...
    def queue_policy(self) -> QueuePolicy: ...
    def core_limits(self) -> CoreLimits: ...
    def builtin_limits(self) -> BuiltinLimits | None: ...
    def retry_policy(self) -> RetryPolicy: ...


@dataclass
class ServiceApp:
    server: GrpcServer
    pool: asyncpg.Pool
    # The pool and channels; they must outlive the calls the server drains in stop().
    resources: AsyncExitStack = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)
        await self.resources.aclose()


class Wiring:
    """`async with Wiring(...) as w:` ... `return App(server, w.pool, w.hand_over(), ...)`.

    Leaving the block by an exception (cancellation included) closes what was opened;
    whatever was not handed over is closed on a normal exit too, so a forgotten
    hand_over() shows up at once as a closed pool rather than as a leak.
    """

    def __init__(self, settings: WiringSettings, migrations: Path) -> None:
        self._settings = settings
        self._migrations = migrations
        self._stack = AsyncExitStack()
        self._retries = RetryStats()  # of every channel; exported by the server's metrics

    async def __aenter__(self) -> Self:
        # TLS settings are checked before the database is touched: a bad certificate path
        # should fail fast, not after a connection attempt.
        self._server_credentials = self._settings.server_credentials()
        self._channel_credentials = self._settings.channel_credentials()
        self.pool = await db.create_pool(
            self._settings.database_url, max_size=self._settings.db_pool_max_size
        )
        self._stack.push_async_callback(self.pool.close)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def channel(
        self, address: str, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
    ) -> grpc.aio.Channel:
        """A channel to another service; it connects lazily, so start order does not matter.
        Calls that the other side sheds are retried within the channel's retry budget."""
        retry = RetryInterceptor(self._settings.retry_policy(), self._retries)
        channel = clients.open_channel(
            address,
            credentials=self._channel_credentials,
            interceptors=[retry, *interceptors],
            max_message_bytes=self._settings.grpc_max_message_bytes,
        )
        self._stack.push_async_callback(channel.close)
        return channel

    async def serve(
        self,
        service: ServiceRegistration,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> GrpcServer:
        # Migrate last, so a configuration mistake found while building the servicer
        # leaves the schema untouched, and before serving, so no call sees an old schema.
        await apply_migrations(self.pool, self._migrations)
        server = await start_server(
            [service],
            host=self._settings.grpc_host,
            port=self._settings.grpc_port,
            interceptors=interceptors,
            credentials=self._server_credentials,
            max_message_bytes=self._settings.grpc_max_message_bytes,
            overload=self._settings.limit_policy(),
            queue=self._settings.queue_policy(),
            shed_retry_after=self._settings.overload_retry_after_seconds,
            core=self._settings.core_limits(),
            builtin=self._settings.builtin_limits(),
        )
        server.metrics.registry.register(RetryCollector(self._retries))
        server.watch_database(self.pool)  # readiness follows the database
        return server

    def background(self, name: str, work: Callable[[], Coroutine[object, object, None]]) -> None:
        """Run `work()` as a task for the app's life. It is cancelled in stop() after the
        server has drained and before the pool and channels it may use are closed."""
        task = asyncio.get_running_loop().create_task(work(), name=name)

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._stack.push_async_callback(cancel)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call `callback` in stop(), in reverse order of registration, like the rest."""
        self._stack.callback(callback)

    def hand_over(self) -> AsyncExitStack:
        """Give the opened resources to the running app, which closes them in stop()."""
        return self._stack.pop_all()
