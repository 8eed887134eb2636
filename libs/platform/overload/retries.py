"""The client side: a call to another service that was shed (RESOURCE_EXHAUSTED with a
RetryInfo delay) is tried again after that delay, within its deadline and within a retry
budget, so that an overloaded dependency sees at most a few percent more calls, never a
retry storm.

Why not gRPC's own retries (a service config `retryPolicy` with `retryThrottling`): they
wait an exponential backoff and read only gRPC's `grpc-retry-pushback-ms` trailer, not the
google.rpc.RetryInfo the services send to every client, and they count nothing a metric
could show. The budget follows Finagle's RetryBudget: retries in a sliding window may be at
most `ratio` of the calls in it, plus a small allowance (`min_per_second`) so that a caller
with little traffic can still retry once in a while.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from libs.platform.deadlines import MIN_BUDGET_S
from libs.platform.rpc_types import ClientContinuation, method_name, with_timeout

# The sliding window is kept as this many slots of calls and retries, so the budget costs
# two integer adds per call and never holds per-call state.
SLOTS = 10
STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RetryPolicy:
    ratio: float = 0.1
    min_per_second: float = 1.0
    window_seconds: float = 10.0
    max_retries: int = 2  # per call
    jitter: float = 0.5  # a retry waits the delay times 1 to 1 + jitter


class RetryBudget:
    def __init__(self, policy: RetryPolicy, now: float) -> None:
        self._policy = policy
        self._slot_seconds = policy.window_seconds / SLOTS
        self._calls = [0] * SLOTS
        self._retries = [0] * SLOTS
        self._slot = math.floor(now / self._slot_seconds)

    def _advance(self, now: float) -> int:
        slot = math.floor(now / self._slot_seconds)
        for s in range(max(self._slot + 1, slot - SLOTS + 1), slot + 1):
            self._calls[s % SLOTS] = self._retries[s % SLOTS] = 0
        self._slot = max(self._slot, slot)
        return self._slot % SLOTS

    def record_call(self, now: float) -> None:
        self._calls[self._advance(now)] += 1

    def allowed(self, now: float) -> float:
        """Retries the window allows in all (spent ones included)."""
        self._advance(now)
        p = self._policy
        return p.min_per_second * p.window_seconds + p.ratio * sum(self._calls)

    def try_spend(self, now: float) -> bool:
        """Take one retry from the budget, or False when the window's share is spent."""
        index = self._advance(now)
        if sum(self._retries) + 1 > self.allowed(now):
            return False
        self._retries[index] += 1
        return True


def retry_delay(trailing_metadata: Any) -> float | None:
    """The RetryInfo delay in a call's google.rpc.Status, in seconds, if it carries one."""
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a peer's malformed details mean "no delay given"
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                d = info.retry_delay
                return max(0.0, d.seconds + d.nanos / 1e9)
    return None


class RetryStats:
    """Retries by method and outcome: `spent` (sent again) or why not (`budget`,
    `deadline`, `attempts`)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()


class RetryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(
        self,
        policy: RetryPolicy,
        stats: RetryStats,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self.budget = RetryBudget(policy, clock())

    async def intercept_unary_unary(
        self,
        continuation: ClientContinuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        details = client_call_details
        start = self._clock()
        deadline = None if details.timeout is None else start + details.timeout
        self.budget.record_call(start)
        retries = 0
        while True:
            call = await continuation(details, request)
            if await call.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                return call
            delay = retry_delay(await call.trailing_metadata())
            if delay is None:  # a quota or a size limit: the same call would fail again
                return call
            wait = delay * (1 + self._policy.jitter * self._rand())
            now = self._clock()
            method = method_name(details)
            if retries >= self._policy.max_retries:
                return self._refused(method, "attempts", call)
            if deadline is not None and now + wait + MIN_BUDGET_S >= deadline:
                return self._refused(method, "deadline", call)
            if not self.budget.try_spend(now):
                return self._refused(method, "budget", call)
            self._stats.counts[(method, "spent")] += 1
            retries += 1
            await self._sleep(wait)
            if deadline is not None:
                details = with_timeout(details, deadline - self._clock())

    def _refused(self, method: str, why: str, call: Any) -> Any:
        self._stats.counts[(method, why)] += 1
        return call  # the caller sees the dependency's own RESOURCE_EXHAUSTED


class RetryCollector(Collector):
    def __init__(self, stats: RetryStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "grpc_client_overload_retries",
            "Calls to other services that were shed (RESOURCE_EXHAUSTED with RetryInfo), by "
            "outcome: spent (sent again), or not retried because of the budget, the "
            "deadline or the attempts per call",
            labels=["grpc_method", "outcome"],
        )
        for (method, outcome), n in sorted(self._stats.counts.items()):
            family.add_metric([method, outcome], n)
        yield family
