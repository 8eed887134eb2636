"""A sign-up flood and a login probe: the attack of finding 2 and what it does to Login.

Used by test_attacks.py (a short flood, asserting that logins keep working) and by
signup_flood.py (the 20 s measurement with its printed numbers). The flood runs in a child
process of its own, as an attacker's client would: sharing the probe's event loop would
slow the probe down and measure the client, not the services.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc


async def flood(users_addr: str, email: str, concurrency: int, seconds: float) -> Counter[str]:
    """`concurrency` callers signing up with `email` back to back; answers by status code."""
    codes: Counter[str] = Counter()
    end = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(users_addr) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)

        async def caller(i: int) -> None:
            n = 0
            while time.monotonic() < end:
                n += 1
                request = user_pb2.CreateUserRequest(email=email, password=f"flood {i} {n} pw")
                try:
                    await stub.CreateUser(request, timeout=10)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as err:
                    codes[err.code().name] += 1

        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return codes


def _flood_child(
    users_addr: str, email: str, concurrency: int, seconds: float, out: Connection
) -> None:
    out.send("started")
    out.send(dict(asyncio.run(flood(users_addr, email, concurrency, seconds))))
    out.close()


@dataclass
class FloodProcess:
    process: BaseProcess
    results: Connection

    async def started(self, wait_s: float = 60) -> None:
        ready = await asyncio.to_thread(self.results.poll, wait_s)
        assert ready and self.results.recv() == "started", "the flood process did not start"

    async def codes(self, wait_s: float = 120) -> dict[str, int]:
        """Wait for the flood to end; its answers by status code."""
        ready = await asyncio.to_thread(self.results.poll, wait_s)
        assert ready, "the flood process did not finish"
        codes: dict[str, int] = self.results.recv()
        await asyncio.to_thread(self.process.join, 10)
        return codes


def start_flood(users_addr: str, email: str, concurrency: int, seconds: float) -> FloodProcess:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_flood_child,
        args=(users_addr, email, concurrency, seconds, send),
        name="signup-flood",
        daemon=True,
    )
    process.start()
    send.close()
    return FloodProcess(process, receive)


@dataclass
class LoginStats:
    latencies: list[float] = field(default_factory=list)  # seconds, every attempt
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return len(self.latencies)

    @property
    def success_rate(self) -> float:
        return self.codes["OK"] / self.attempts if self.attempts else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def summary(self) -> str:
        return (
            f"{self.attempts} logins, {self.success_rate:.1%} succeeded, "
            f"p50 {self.percentile(50) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms, "
            f"max {max(self.latencies, default=math.nan) * 1000:.0f} ms; "
            f"answers {dict(sorted(self.codes.items()))}"
        )


async def probe_logins(
    auth: auth_pb2_grpc.AuthServiceStub,
    email: str,
    password: str,
    seconds: float,
    concurrency: int = 1,
    call_deadline_s: float = 10,
) -> LoginStats:
    """Log in with the right password, back to back from `concurrency` callers."""
    stats = LoginStats()
    end = time.monotonic() + seconds
    request = auth_pb2.LoginRequest(email=email, password=password)

    async def caller() -> None:
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                await auth.Login(request, timeout=call_deadline_s)
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            stats.latencies.append(time.monotonic() - start)
            stats.codes[code] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return stats
