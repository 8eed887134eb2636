"""Login throttling: a sliding window of failed attempts per account and per caller address.

State lives in auth_db so that replicas share it. Two racing attempts may both pass the
check before either records its failure, so a burst can exceed the limit by the number of
concurrent calls; the next check counts them all.
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

    async def retry_after(self, limits: Sequence[Limit]) -> float | None:
        """Seconds until a new attempt is allowed, or None if it is allowed now."""
        worst: float | None = None
        async with self._pool.acquire(timeout=self._timeout) as conn:
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
        return worst

    async def record_failure(self, scopes: Sequence[str]) -> None:
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO login_failures (scope) VALUES ($1)", [(s,) for s in scopes]
            )
            await conn.execute(
                "DELETE FROM login_failures WHERE failed_at < clock_timestamp() - $1::interval",
                self._window,
            )

    async def clear(self, scope: str) -> None:
        async with self._pool.acquire(timeout=self._timeout) as conn:
            await conn.execute("DELETE FROM login_failures WHERE scope = $1", scope)


async def abort_throttled(context: grpc.aio.ServicerContext, retry_after: float) -> None:
    """RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail and the delay in the message."""
    seconds = max(1, math.ceil(retry_after))
    message = f"too many login attempts; retry in {seconds} s"
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    await context.abort_with_status(rpc_status.to_status(status))
