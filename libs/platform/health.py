"""Readiness tied to the database: a background task pings the pool and flips grpc.health.

"" and the service names report SERVING only while `SELECT 1` answers; LIVENESS_SERVICE
stays SERVING while the process runs, so a liveness probe on it does not restart pods for
a database outage that a restart cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from grpc_health.v1 import health, health_pb2

from libs.platform.db import CONNECTION_ERRORS

log = logging.getLogger(__name__)

LIVENESS_SERVICE = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Check = Callable[[], Awaitable[bool]]

_CHECK_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def pool_check(pool: asyncpg.Pool, timeout: float = 1.0) -> Check:
    """True when a pooled connection answers `SELECT 1` within `timeout` seconds."""

    async def check() -> bool:
        try:
            async with asyncio.timeout(timeout):
                async with pool.acquire() as conn:
                    return bool(await conn.fetchval("SELECT 1") == 1)
        except _CHECK_ERRORS:
            return False

    return check


class ReadinessWatcher:
    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        check: Check,
        *,
        interval: float = 1.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._servicer = servicer
        self._names = ["", *names]
        self._check = check
        self._interval = interval
        self._on_change = on_change
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool | None:
        return self._serving

    async def check_once(self) -> bool:
        ok = await self._check()
        if ok != self._serving:
            self._serving = ok
            status = SERVING if ok else NOT_SERVING
            for name in self._names:
                await self._servicer.set(name, status)
            if self._on_change is not None:
                self._on_change(ok)
            if ok:
                log.info("database reachable: serving", extra={"services": self._names})
            else:
                log.warning("database unreachable: not serving", extra={"services": self._names})
        return ok

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # a bug in a check must not silently stop the watcher
                log.exception("readiness check failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="readiness-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
