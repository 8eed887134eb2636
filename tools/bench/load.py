"""Closed-loop gRPC load from separate processes: N workers, each with its own event loop.

Each worker process opens its own channels (separate HTTP/2 connections, so the kernel can
spread them over server processes sharing a port) and runs its share of the concurrent
callers; each caller sends its next request as soon as the previous one answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

METHODS = ("GetUser", "CreatePayment", "Login")
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Job:
    method: str
    target: str
    callers: int
    start_at: float  # time.time() when measuring starts, shared by all workers
    warmup_s: float
    duration_s: float
    user_id: str
    email: str = ""
    password: str = ""
    token: str = ""
    channels: int = 2


@dataclass
class WorkerResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class PointResult:
    calls: int
    errors: dict[str, int]
    rate: float
    p50_ms: float
    p99_ms: float


class ClosedLoopDriver(Protocol):
    """What the bench needs of a closed-loop driver: this module's Python one, or h2load
    (h2load.H2Load). Each takes the arguments the other needs and ignores them, so that one
    call site serves both."""

    def run(
        self,
        method: str,
        target: str,
        concurrency: int,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        metrics_urls: Sequence[str],
        email: str = "",
        password: str = "",
        token: str = "",
    ) -> PointResult: ...


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _caller(job: Job, channel: grpc.aio.Channel):  # type: ignore[no-untyped-def]
    """A zero-argument coroutine factory for one call of job.method."""
    metadata = (("authorization", f"Bearer {job.token}"),) if job.token else None
    if job.method == "GetUser":
        stub = user_pb2_grpc.UserServiceStub(channel)
        req = user_pb2.GetUserRequest(user_id=job.user_id)
        return lambda: stub.GetUser(req, timeout=CALL_TIMEOUT_S, metadata=metadata)
    if job.method == "CreatePayment":
        pay = payment_pb2_grpc.PaymentServiceStub(channel)

        def create():  # type: ignore[no-untyped-def]
            # A fresh idempotency key per call: every call is a new payment (an INSERT).
            req = payment_pb2.CreatePaymentRequest(
                user_id=job.user_id,
                amount=1250,
                currency="USD",
                idempotency_key=uuid.uuid4().hex,
                description="bench",
            )
            return pay.CreatePayment(req, timeout=CALL_TIMEOUT_S, metadata=metadata)

        return create
    if job.method == "Login":
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        login = auth_pb2.LoginRequest(email=job.email, password=job.password)
        return lambda: auth.Login(login, timeout=CALL_TIMEOUT_S)
    raise ValueError(f"unknown method {job.method}")


async def _run(job: Job) -> WorkerResult:
    result = WorkerResult()
    # A local subchannel pool makes every channel its own TCP connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(job.target, options=options)
        for _ in range(max(1, min(job.channels, job.callers)))
    ]
    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        calls = [_caller(job, ch) for ch in channels]
        warm_from = job.start_at - job.warmup_s
        end = job.start_at + job.duration_s
        await asyncio.sleep(max(0.0, warm_from - time.time()))

        async def loop(call) -> None:  # type: ignore[no-untyped-def]
            while True:
                t0 = time.time()
                if t0 >= end:
                    return
                try:
                    await call()
                    ok = True
                except grpc.aio.AioRpcError as exc:
                    ok = False
                    if t0 >= job.start_at:
                        result.errors[exc.code().name] += 1
                t1 = time.time()
                # Calls are counted in the window they started in.
                if ok and t0 >= job.start_at:
                    result.latencies_ms.append((t1 - t0) * 1000)

        await asyncio.gather(*(loop(calls[i % len(calls)]) for i in range(job.callers)))
    finally:
        for ch in channels:
            await ch.close()
    return result


def _ready(pause: float) -> None:
    time.sleep(pause)


def _worker(job: Job) -> tuple[list[float], dict[str, int]]:
    result = asyncio.run(_run(job))
    return result.latencies_ms, dict(result.errors)


class LoadGenerator:
    """A pool of client processes, reused across measurement points (spawned, not forked:
    gRPC must not be forked with live channels)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn")
        )
        # Spawn and import in every worker now, so the first point does not pay for it.
        list(self._pool.map(_ready, [0.3] * processes))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self,
        method: str,
        target: str,
        concurrency: int,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        # Unused: every caller sees its own calls' status; h2load needs the servers' counters.
        metrics_urls: Sequence[str] = (),
        email: str = "",
        password: str = "",
        token: str = "",
    ) -> PointResult:
        workers = min(self.processes, concurrency)
        # Leave time for every worker to connect before the shared warm-up starts.
        start_at = time.time() + 0.5 + warmup_s
        shares = [concurrency // workers + (i < concurrency % workers) for i in range(workers)]
        jobs = [
            Job(
                method=method,
                target=target,
                callers=share,
                start_at=start_at,
                warmup_s=warmup_s,
                duration_s=duration_s,
                user_id=user_id,
                email=email,
                password=password,
                token=token,
            )
            for share in shares
        ]
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        for lat, errs in self._pool.map(_worker, jobs):
            latencies.extend(lat)
            errors.update(errs)
        latencies.sort()
        return PointResult(
            calls=len(latencies),
            errors=dict(errors),
            rate=len(latencies) / duration_s,
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
        )
