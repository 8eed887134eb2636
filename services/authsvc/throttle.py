"""Login throttling: a sliding window of failed attempts per account and per caller address.

State lives in auth_db so that replicas share it. Every attempt is counted as a failure
before the password is checked, under a per-scope lock, and taken back when it turns out
not to be a wrong password. So concurrent guesses count against each other: a burst gets
no more attempts through than the limit, however many calls race.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

# Caps the scope text: emails are bounded by the handler, addresses are short.
MAX_SCOPE = 300


@dataclass(frozen=True)
class Limit:
    scope: str
    max_failures: int


def email_scope(email: str) -> str:
    return "email:" + email.strip().lower()[: MAX_SCOPE - 6]


def peer_scope(peer: str | None) -> str:
    """'ipv4:10.0.0.1:5555' / 'ipv6:[::1]:5555' -> 'ip:10.0.0.1' / 'ip:::1'.

    Behind a proxy or load balancer this is the proxy's address: the per-address limit
    then protects less, and the per-account limit still holds.
    """
    peer = peer or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0].strip("[]")
        try:
            return "ip:" + str(ipaddress.ip_address(host))
        except ValueError:
            pass
    return "ip:" + peer[: MAX_SCOPE - 3]


class LoginThrottle:
    def __init__(self, pool: asyncpg.Pool, window_seconds: int, acquire_timeout: float) -> None:
        self._pool = pool
        self._window = dt.timedelta(seconds=window_seconds)
        self._timeout = acquire_timeout

    async def admit(self, limits: Sequence[Limit]) -> Admission:
        """Allow an attempt now and count it against every limit, or say how long to wait.

        One transaction with a lock per scope (taken in one order): the check and the count
        of two racing attempts never interleave.
        """
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            for scope in sorted({limit.scope for limit in limits}):
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", scope)
            worst: float | None = None
            for limit in limits:
                # The limit-th most recent failure in the window: once it leaves the window,
                # fewer than max_failures remain and attempts are allowed again.
                wait = await conn.fetchval(
                    "SELECT extract(epoch FROM failed_at + $2::interval - clock_timestamp()) "
                    "FROM login_failures WHERE scope = $1 "
                    "AND failed_at > clock_timestamp() - $2::interval "
                    "ORDER BY failed_at DESC OFFSET $3 LIMIT 1",
                    limit.scope,
                    self._window,
                    limit.max_failures - 1,
                )
                if wait is not None and float(wait) > 0:
                    worst = max(worst or 0.0, float(wait))
            if worst is not None:
                return Admission(retry_after=worst, attempt_ids=())
            ids = await conn.fetch(
                "INSERT INTO login_failures (scope) SELECT unnest($1::text[]) RETURNING id",
                [limit.scope for limit in limits],
            )
            await conn.execute(
                "DELETE FROM login_failures WHERE failed_at < clock_timestamp() - $1::interval",
                self._window,
            )
        return Admission(retry_after=None, attempt_ids=tuple(r["id"] for r in ids))

    async def forgive(self, admission: Admission, clear_scope: str | None = None) -> None:
        """Take back an attempt that was not a wrong password (and, after a successful
        login, the account's earlier failures)."""
        async with self._pool.acquire(timeout=self._timeout) as conn:
            await conn.execute(
                "DELETE FROM login_failures WHERE id = ANY($1::bigint[]) OR scope = $2",
                list(admission.attempt_ids),
                clear_scope,
            )


@dataclass(frozen=True)
class Admission:
    # Seconds to wait before trying again; None: the attempt may go ahead.
    retry_after: float | None
    # The failures recorded for this attempt, to take back if it was not one.
    attempt_ids: tuple[int, ...]


async def abort_throttled(context: grpc.aio.ServicerContext, retry_after: float) -> None:
    """RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail and the delay in the message."""
    seconds = max(1, math.ceil(retry_after))
    message = f"too many login attempts; retry in {seconds} s"
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    await context.abort_with_status(rpc_status.to_status(status))
