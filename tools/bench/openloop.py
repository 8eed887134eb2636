"""Open-loop gRPC load: calls start on a fixed schedule whatever the answers.

A closed loop (h2load, load.py) sends the next call when one answers, so an overloaded
server slows its own load down and queueing hides in fewer calls. Here each client process
starts its share of `rate` calls per second at fixed times and keeps them all in flight, so
the server sees the offered load whether or not it keeps up. h2load has a rate mode
(--rps), but it sees every gRPC answer as HTTP 200 and logs no status per request, so it
cannot tell a shed call's time from a served one's; this driver reads each call's status.

Every latency is measured from the call's scheduled start, not from when the client got
round to sending it, so a client that falls behind adds its lag to the latencies instead of
hiding it (coordinated omission); the lag itself is reported too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from payment.v1 import payment_pb2
from tools.bench.h2load import SERVICES
from tools.bench.load import percentile
from user.v1 import user_pb2

# Every call's deadline unless the caller names one: what a user's client would give it, so
# an answer after it counts as a failure, not as goodput.
DEFAULT_DEADLINE_S = 1.0
CHANNELS = 4  # per client process: HTTP/2 connections spread over the server's workers
SHED = grpc.StatusCode.RESOURCE_EXHAUSTED.name


@dataclass(frozen=True)
class OpenJob:
    method: str
    target: str
    rate: float  # calls per second from this process
    phase: float  # seconds after the schedule's start of this process's first call
    start_at: float  # time.time() when measuring starts, shared by all processes
    warmup_s: float
    duration_s: float
    user_id: str
    token: str
    key_prefix: str  # CreatePayment idempotency keys: f"{key_prefix}{n}"
    deadline_s: float = DEFAULT_DEADLINE_S


@dataclass
class OpenWorkerResult:
    sent: int = 0  # calls scheduled in the measured window
    ok_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lag_ms: list[float] = field(default_factory=list)  # send time - scheduled time
    acked: list[str] = field(default_factory=list)  # idempotency keys answered OK
    shed_keys: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)  # other failures: outcome unknown
    cpu_s: float = 0.0
    wall_s: float = 0.0  # over which cpu_s was spent
    error_messages: dict[str, str] = field(default_factory=dict)  # a message per error code


@dataclass(frozen=True)
class OpenPoint:
    offered: float  # the schedule's calls per second
    duration_s: float
    sent: int
    ok: int
    shed: int
    errors: dict[str, int]
    ok_p50_ms: float
    ok_p99_ms: float
    shed_p50_ms: float
    shed_p99_ms: float
    lag_p99_ms: float
    client_cpu: float  # cores the client processes used over the point
    acked: list[str]
    shed_keys: list[str]
    unknown_keys: list[str]
    error_messages: dict[str, str] = field(default_factory=dict)

    @property
    def goodput(self) -> float:
        return self.ok / self.duration_s


class OpenLoopDriver(Protocol):
    """What the bench needs of a driver: this module's Python one, or the C++ one
    (native_openloop.py)."""

    def run(
        self,
        method: str,
        target: str,
        rate: float,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        token: str = "",
        start_at: float | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> OpenPoint: ...

    def close(self) -> None: ...


def window_start(rate: float, start_at: float | None, warmup_s: float) -> float:
    """A driver's checks before a point: a positive rate, and when the measured window opens
    (time.time()); by default in a second and the warm-up from now, time for a driver's
    processes to start and connect."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    return time.time() + 1.0 + warmup_s if start_at is None else start_at


def _encoder(job: OpenJob):  # type: ignore[no-untyped-def]
    """n -> request bytes (requests are sent pre-serialized: less client CPU per call)."""
    if job.method == "GetUser":
        raw = user_pb2.GetUserRequest(user_id=job.user_id).SerializeToString()
        return lambda n: raw
    if job.method == "CreatePayment":

        def create(n: int) -> bytes:
            return payment_pb2.CreatePaymentRequest(
                user_id=job.user_id,
                amount=1250,
                currency="USD",
                idempotency_key=f"{job.key_prefix}{n}",
                description="bench",
            ).SerializeToString()

        return create
    raise ValueError(f"the open loop cannot send {job.method}; known: {', '.join(SERVICES)}")


async def _run(job: OpenJob) -> OpenWorkerResult:
    result = OpenWorkerResult()
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(job.target, options=options) for _ in range(CHANNELS)]
    path = f"/{SERVICES[job.method]}/{job.method}"
    metadata = (("authorization", f"Bearer {job.token}"),) if job.token else None
    encode = _encoder(job)
    loop = asyncio.get_running_loop()
    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        # Bytes in, bytes out: no serializer either way.
        stubs: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            ch.unary_unary(path) for ch in channels
        ]
        # The schedule on the loop's monotonic clock, anchored to the shared wall time.
        offset = loop.time() - time.time()
        window = job.start_at + offset
        first = window - job.warmup_s + job.phase
        interval = 1.0 / job.rate
        # Every call scheduled before the window's end.
        total = math.ceil((job.warmup_s + job.duration_s - job.phase) * job.rate - 1e-9)
        # The first call scheduled at or after the window's start.
        measured_from = max(0, math.ceil((window - first) / interval - 1e-9))
        tasks: set[asyncio.Task[None]] = set()

        async def one(n: int, scheduled: float) -> None:
            measured = n >= measured_from
            key = f"{job.key_prefix}{n}"
            if measured:
                result.lag_ms.append((loop.time() - scheduled) * 1000)
            try:
                await stubs[n % CHANNELS](encode(n), timeout=job.deadline_s, metadata=metadata)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
                result.error_messages.setdefault(code, exc.details() or "")
            elapsed_ms = (loop.time() - scheduled) * 1000
            if job.method == "CreatePayment":
                # Every call's key, warm-up included: the database check covers them all.
                if code == "OK":
                    result.acked.append(key)
                elif code == SHED:
                    result.shed_keys.append(key)
                else:
                    result.unknown_keys.append(key)
            if not measured:
                return
            if code == "OK":
                result.ok_ms.append(elapsed_ms)
            elif code == SHED:
                result.shed_ms.append(elapsed_ms)
            else:
                result.errors[code] += 1

        await asyncio.sleep(max(0.0, first - loop.time()))
        cpu0, wall0 = sum(os.times()[:2]), loop.time()
        n = 0
        while n < total:
            due = min(total, int((loop.time() - first) / interval) + 1)
            while n < due:
                task = loop.create_task(one(n, first + n * interval))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if n < total:
                await asyncio.sleep(max(0.0, first + n * interval - loop.time()))
        result.sent = total - measured_from
        await asyncio.gather(*tasks)
        result.cpu_s = sum(os.times()[:2]) - cpu0
        result.wall_s = loop.time() - wall0
    finally:
        for ch in channels:
            await ch.close()
    return result


def _worker(job: OpenJob) -> OpenWorkerResult:
    return asyncio.run(_run(job))


def _ready(pause: float) -> None:
    time.sleep(pause)


class OpenLoopGenerator:
    """Client processes (spawned: gRPC must not be forked with live channels), reused
    across points; the offered rate is split evenly and their schedules interleave."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn")
        )
        list(self._pool.map(_ready, [0.3] * processes))
        self._runs = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self,
        method: str,
        target: str,
        rate: float,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        token: str = "",
        start_at: float | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> OpenPoint:
        """`start_at` (time.time()) is when the measured window opens; by default in a
        second and the warm-up from now, time for every process to connect."""
        start_at = window_start(rate, start_at, warmup_s)
        self._runs += 1
        p = self.processes
        jobs = [
            OpenJob(
                method=method,
                target=target,
                rate=rate / p,
                phase=i / rate,
                start_at=start_at,
                warmup_s=warmup_s,
                duration_s=duration_s,
                user_id=user_id,
                token=token,
                key_prefix=f"ol-{os.getpid()}-{self._runs}-{i}-",
                deadline_s=deadline_s,
            )
            for i in range(p)
        ]
        return combine(list(self._pool.map(_worker, jobs)), rate, duration_s)


def combine(results: list[OpenWorkerResult], rate: float, duration_s: float) -> OpenPoint:
    ok = sorted(x for r in results for x in r.ok_ms)
    shed = sorted(x for r in results for x in r.shed_ms)
    lag = sorted(x for r in results for x in r.lag_ms)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    return OpenPoint(
        offered=rate,
        duration_s=duration_s,
        sent=sum(r.sent for r in results),
        ok=len(ok),
        shed=len(shed),
        errors=dict(errors),
        ok_p50_ms=percentile(ok, 0.50),
        ok_p99_ms=percentile(ok, 0.99),
        shed_p50_ms=percentile(shed, 0.50),
        shed_p99_ms=percentile(shed, 0.99),
        lag_p99_ms=percentile(lag, 0.99),
        client_cpu=sum(r.cpu_s for r in results) / max(max(r.wall_s for r in results), 1e-9),
        acked=[k for r in results for k in r.acked],
        shed_keys=[k for r in results for k in r.shed_keys],
        unknown_keys=[k for r in results for k in r.unknown_keys],
        error_messages={c: m for r in results for c, m in r.error_messages.items()},
    )
