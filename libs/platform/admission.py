"""Admission control: refuse work at once, with a retry delay, rather than queue it forever.

* `WorkPool`: a bounded lane of threads for CPU-heavy calls (password hashing). Separate
  lanes cannot starve each other: a flood on one fills only its own threads and its own
  short queue, and everything beyond that is refused at once. Within a lane, waiting calls
  go by rank, so a flood cannot push better-ranked calls out.
* `RateLimiter`: token buckets per key (a caller address, a user id) in process memory, for
  cheap per-request checks where a database round trip would cost more than the work it
  guards.
* `client_address()`: the caller's address from grpc's peer string, as a limiter key.
* `abort_retry_later()`: the one way calls are refused for load: RESOURCE_EXHAUSTED with a
  google.rpc.RetryInfo detail and the delay in the message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import ipaddress
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NoReturn, TypeVar
from urllib.parse import unquote

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from libs.platform.rpc_types import Context

T = TypeVar("T")

# Caps a key built from a peer string we do not recognise.
MAX_ADDRESS_KEY = 128


class Overloaded(Exception):
    """Refused for load; handlers answer with abort_retry_later(context, str(exc), ...)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def retry_status(message: str, retry_after: float, *, whole_seconds: bool = True) -> grpc.Status:
    """RESOURCE_EXHAUSTED, `message; retry in N s`, with RetryInfo(N).

    N is whole seconds (at least 1) for limits people hit (throttled logins, sign-ups); with
    `whole_seconds=False` it keeps millisecond precision (at least 1 ms), for refusals that
    clear in a moment, such as a server shedding load (libs/platform/overload).
    """
    if whole_seconds:
        millis = max(1, math.ceil(retry_after)) * 1000
    else:
        millis = max(1, math.ceil(retry_after * 1000))
    seconds, rest = divmod(millis, 1000)
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=rest * 1_000_000)
        )
    )
    status = status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED,
        message=f"{message}; retry in {millis / 1000:g} s",
        details=[detail],
    )
    grpc_status: grpc.Status = rpc_status.to_status(status)
    return grpc_status


async def abort_retry_later(context: Context, message: str, retry_after: float) -> NoReturn:
    await context.abort_with_status(retry_status(message, retry_after))
    raise AssertionError("abort_with_status returns only by raising")


async def abort_overloaded(context: Context, exc: Overloaded) -> NoReturn:
    await abort_retry_later(context, exc.message, exc.retry_after)


def client_address(peer: str | None) -> str:
    """'ipv4:10.0.0.1:5555' -> '10.0.0.1'; 'ipv6:%5B2001:db8::1%5D:443' -> '2001:db8::/64'.

    An IPv6 host usually owns a whole /64, so keying on the full address would give one
    attacker 2^64 identities; the /64 is what one subscriber controls. IPv4-mapped IPv6
    addresses count as the IPv4 address. Behind a proxy this is the proxy's address
    (forwarded headers are not trusted).
    """
    peer = peer or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        # gRPC core writes peers as URIs: 'ipv6:%5B2001:db8::1%5D:443'. Read raw, that was
        # no address, and the whole peer, port included, became the key: one bucket per
        # connection for every IPv6 caller.
        host = unquote(rest).rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if isinstance(addr, ipaddress.IPv6Address):
                if addr.ipv4_mapped is not None:
                    return str(addr.ipv4_mapped)
                return str(ipaddress.IPv6Network((addr, 64), strict=False))
            return str(addr)
    return peer[:MAX_ADDRESS_KEY]


class WorkPool:
    """At most `workers` calls run (each on its own thread), at most `queue` wait; beyond
    that a call is refused with Overloaded at once.

    Waiting calls start in order of `rank` (lower first), then of arrival. When the queue
    is full, a call that ranks better than the worst waiting one takes its place, and that
    one is refused instead: under a flood, calls of better rank (a login from the account
    owner's device) neither wait behind nor get refused for worse ones.

    A caller that gives up (its deadline passed) while waiting frees its place; one that
    gives up while its call runs keeps the thread until the call ends, so the pool never
    runs more than `workers` calls, whatever the callers do.
    """

    def __init__(self, name: str, workers: int, queue: int, retry_after: float = 1.0) -> None:
        self.name = name  # what callers are told there are too many of: "logins"
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name
        )
        self._workers = workers
        self._queue = queue
        self._running = 0
        # (rank, arrival, future): the future is resolved when the call may start.
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._retry_after = retry_after

    @property
    def in_use(self) -> int:
        """Calls running or waiting."""
        return self._running + len(self._waiting)

    def _refusal(self) -> Overloaded:
        return Overloaded(f"too many {self.name} at once", self._retry_after)

    async def run(self, fn: Callable[..., T], *args: object, rank: int = 0) -> T:
        if self._running < self._workers and not self._waiting:
            self._running += 1
        else:
            await self._wait_turn(rank)
        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        # Released when the thread is done, not when the caller stops waiting.
        job.add_done_callback(lambda _: self._release_from(loop))
        return await asyncio.wrap_future(job, loop=loop)

    async def _wait_turn(self, rank: int) -> None:
        """Wait for a thread (counted as running once granted), or raise Overloaded."""
        entry = (rank, next(self._arrivals), asyncio.get_running_loop().create_future())
        if len(self._waiting) >= self._queue:
            worst = max(self._waiting, default=None)
            if worst is None or worst[:2] <= entry[:2]:
                raise self._refusal()
            self._waiting.remove(worst)
            heapq.heapify(self._waiting)
            worst[2].set_exception(self._refusal())
        heapq.heappush(self._waiting, entry)
        try:
            await entry[2]
        except BaseException:
            if entry in self._waiting:  # gave up (or was displaced) before its turn
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            elif entry[2].done() and not entry[2].cancelled() and entry[2].exception() is None:
                self._release()  # granted a thread in the same turn it gave up: hand it on
            raise

    def _release_from(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop is closed: the process is shutting down
            pass

    def _release(self) -> None:
        """A thread is free: the best waiting call gets it (it stays counted as running)."""
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)
                return
        self._running -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class RateLimiter:
    """A token bucket per key: `burst` calls at once, refilled at `per_second`.

    In process memory, so each replica (and each worker process) limits on its own: the
    effective limit is this times the number of processes. At most `max_keys` buckets are
    kept (least recently used dropped), so a caller cycling through keys costs bounded
    memory; a dropped bucket starts full again, which errs towards admitting.
    """

    def __init__(
        self,
        burst: float,
        per_second: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._rate = per_second
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, key: str) -> float | None:
        """Seconds until `key` has a token, or None if it has one now; spends nothing."""
        held = self._buckets.get(key)
        if held is None:
            return None
        tokens, at = held
        tokens = min(self._burst, tokens + (self._clock() - at) * self._rate)
        if tokens >= 1:
            return None
        return (1 - tokens) / self._rate if self._rate > 0 else math.inf

    def take(self, key: str) -> float | None:
        """Spend one token for `key`: None if allowed, else seconds until one is free."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            retry = None
        else:
            self._buckets[key] = (tokens, now)
            retry = (1 - tokens) / self._rate if self._rate > 0 else math.inf
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return retry
