"""asyncpg pool creation with bounded retries, and the set of errors meaning "DB is down"."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from libs.platform import deadlines
from libs.platform.errors import Unavailable

log = logging.getLogger(__name__)

# Errors that mean the database (or the path to it) is unavailable, as opposed to a bug or a
# bad query. Handlers let these propagate; the error interceptor answers UNAVAILABLE.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash, cannot connect now
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
)


# Upper bound for one statement when the caller set no deadline.
COMMAND_TIMEOUT_S = 30.0


# Connections whose last use through acquire() below ended without an exception. Weak, so a
# connection the pool drops without a reset can never lend its mark to a later one.
_CLEAN: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


async def _reset(conn: asyncpg.Connection) -> None:
    """Pool `reset`: skip the reset query after a clean use through acquire().

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a second round trip for every one-statement call, about a
    third of GetUser's database time. The stores leave no session state behind (no SET,
    LISTEN, session locks or cursors outside transactions), so after a use that ended
    normally there is nothing to reset. After an exception (a timeout, a cancelled
    statement, a server going away), and for every other acquirer (migrations' advisory
    lock, health checks), the full reset still runs: it also proves the connection is
    usable, and if it fails the pool drops the connection. asyncpg rolls back an open
    transaction before calling this in every case.
    """
    if conn in _CLEAN:
        _CLEAN.discard(conn)
        return
    await conn.reset()


class Acquire:
    """pool.acquire()'s context, noting a clean exit so the release can skip the reset."""

    __slots__ = ("_conn", "_ctx")

    def __init__(self, ctx: PoolAcquireContext) -> None:
        self._ctx = ctx
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        self._conn = await self._ctx.__aenter__()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            # The pool hands the reset the raw connection behind this proxy.
            _CLEAN.add(getattr(self._conn, "_con", self._conn))
        await self._ctx.__aexit__(exc_type, exc, tb)


class DatabaseUnavailable(Unavailable):
    pass


def acquire(pool: asyncpg.Pool, timeout: float) -> Acquire:
    """pool.acquire bounded by both `timeout` and the current call's deadline.

    A short bound matters during an outage: acquiring reconnects, and a caller should get
    UNAVAILABLE promptly rather than wait out a long connect.
    """
    return Acquire(pool.acquire(timeout=deadlines.budget(timeout)))


def query_timeout() -> float:
    """`timeout=` for a statement: asyncpg cancels it server-side when the caller gives up."""
    return deadlines.budget(COMMAND_TIMEOUT_S)


async def create_pool(
    dsn: str,
    *,
    attempts: int = 6,
    base_delay: float = 0.25,
    max_delay: float = 5.0,
    connect_timeout: float = 5.0,
    min_size: int = 1,
    max_size: int = 10,
) -> asyncpg.Pool:
    """Open a pool, retrying connection failures with exponential backoff and full jitter.

    Configuration errors (bad password, unknown database) are not retried: waiting will
    not fix them, and failing fast gives the operator the real message.
    """
    for attempt in range(1, attempts + 1):
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=_reset,
            )
        except CONNECTION_ERRORS as exc:
            if attempt == attempts:
                log.error(
                    "database connection failed, giving up",
                    extra={"attempt": attempt, "attempts": attempts, "error": repr(exc)},
                )
                raise DatabaseUnavailable(
                    f"could not connect to the database after {attempts} attempts: {exc}"
                ) from exc
            delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto
            log.warning(
                "database connection failed, retrying",
                extra={
                    "attempt": attempt,
                    "attempts": attempts,
                    "retry_in_s": round(delay, 3),
                    "error": repr(exc),
                },
            )
            await asyncio.sleep(delay)
        else:
            log.info("database pool ready", extra={"attempt": attempt})
            return pool
    raise AssertionError("unreachable")
