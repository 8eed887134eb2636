"""Floods and a probe: the sign-up flood (second round, finding 2), the login flood from many
addresses (third round, finding 1) and what they do to Login, and one account's flood of its
own reads (third round) and what it does to other users' calls.

Used by test_attacks.py (short floods, asserting that logins keep working) and by
signup_flood.py and login_flood.py (20 s measurements with their printed numbers). A flood
runs in a child process of its own, as an attacker's client would: sharing the probe's
event loop would slow the probe down and measure the client, not the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.testing.net import SourceAddressProxy
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc


async def outcome(call: Awaitable[object]) -> str:
    """The status code a call ended with, by name ("OK" when it answered)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return str(err.code().name)
    return "OK"


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
                codes[await outcome(stub.CreateUser(request, timeout=10))] += 1

        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return codes


def loopback_address(first_block: int, i: int) -> str:
    """The i-th address from 127.0.`first_block`.1 on, 250 per block."""
    return f"127.0.{first_block + i // 250}.{1 + i % 250}"


def flood_address(i: int) -> str:
    """The i-th attacker address (127.0.1.1 on): not 127.0.0.1, where the probes are."""
    return loopback_address(1, i)


async def login_flood(
    auth_addr: str, addresses: int, concurrency: int, seconds: float
) -> Counter[str]:
    """`concurrency` callers logging in with wrong passwords for unknown emails, each call
    from the next of `addresses` source addresses; answers by status code."""
    codes: Counter[str] = Counter()
    end = time.monotonic() + seconds
    host, port = auth_addr.rsplit(":", 1)
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for i in range(addresses):
            proxy = await stack.enter_async_context(
                SourceAddressProxy((host, int(port)), flood_address(i))
            )
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(proxy.address))
            stubs.append(auth_pb2_grpc.AuthServiceStub(channel))
        sent = itertools.count()

        async def caller() -> None:
            while time.monotonic() < end:
                n = next(sent)
                request = auth_pb2.LoginRequest(email=f"nobody{n}@flood.example", password="guess")
                codes[await outcome(stubs[n % addresses].Login(request, timeout=10))] += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return codes


async def account_flood(
    users_addr: str,
    payments_addr: str,
    user_id: str,
    token: str,
    concurrency: int,
    seconds: float,
) -> Counter[str]:
    """One account's `concurrency` callers reading its own user and its payments (a page of
    100) back to back, with its own valid token; answers by status code."""
    codes: Counter[str] = Counter()
    end = time.monotonic() + seconds
    metadata = (("authorization", f"Bearer {token}"),)
    async with (
        grpc.aio.insecure_channel(users_addr) as uc,
        grpc.aio.insecure_channel(payments_addr) as pc,
    ):
        users = user_pb2_grpc.UserServiceStub(uc)
        payments = payment_pb2_grpc.PaymentServiceStub(pc)

        async def caller() -> None:
            while time.monotonic() < end:
                get = users.GetUser(
                    user_pb2.GetUserRequest(user_id=user_id), metadata=metadata, timeout=10
                )
                codes[await outcome(get)] += 1
                listed = payments.ListPayments(
                    payment_pb2.ListPaymentsRequest(user_id=user_id, page_size=100),
                    metadata=metadata,
                    timeout=10,
                )
                codes[await outcome(listed)] += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return codes


def _child(run: Callable[..., Awaitable[Counter[str]]], *args: object) -> None:
    """In the child process: `run(*args)` (a flood above), its codes sent back through the
    pipe that comes last in `args`."""
    *params, out = args
    assert isinstance(out, Connection)
    out.send("started")
    out.send(dict(asyncio.run(run(*params))))
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


def _start(run: Callable[..., Awaitable[Counter[str]]], name: str, *args: object) -> FloodProcess:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(run, *args, send), name=name, daemon=True)
    process.start()
    send.close()
    return FloodProcess(process, receive)


def start_flood(users_addr: str, email: str, concurrency: int, seconds: float) -> FloodProcess:
    return _start(flood, "signup-flood", users_addr, email, concurrency, seconds)


def start_login_flood(
    auth_addr: str, addresses: int, concurrency: int, seconds: float
) -> FloodProcess:
    """The login flood in a child process (login_flood)."""
    return _start(login_flood, "login-flood", auth_addr, addresses, concurrency, seconds)


def start_account_flood(
    users_addr: str, payments_addr: str, user_id: str, token: str, concurrency: int, seconds: float
) -> FloodProcess:
    """One account's flood in a child process (account_flood)."""
    return _start(
        account_flood,
        "account-flood",
        users_addr,
        payments_addr,
        user_id,
        token,
        concurrency,
        seconds,
    )


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

    async def record(self, call: Callable[[], Awaitable[object]]) -> None:
        """Make one call and note how long it took and how it ended."""
        start = time.monotonic()
        code = await outcome(call())
        self.latencies.append(time.monotonic() - start)
        self.codes[code] += 1

    def summary(self, what: str = "logins") -> str:
        return (
            f"{self.attempts} {what}, {self.success_rate:.1%} succeeded, "
            f"p50 {self.percentile(50) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms, "
            f"max {max(self.latencies, default=math.nan) * 1000:.0f} ms; "
            f"answers {dict(sorted(self.codes.items()))}"
        )


async def probe_logins(
    auth: auth_pb2_grpc.AuthServiceAsyncStub,
    email: str,
    password: str,
    seconds: float,
    concurrency: int = 1,
    call_deadline_s: float = 10,
    device_token: str = "",
) -> LoginStats:
    """Log in with the right password, back to back from `concurrency` callers."""
    stats = LoginStats()
    end = time.monotonic() + seconds
    request = auth_pb2.LoginRequest(email=email, password=password, device_token=device_token)

    async def caller() -> None:
        while time.monotonic() < end:
            await stats.record(functools.partial(auth.Login, request, timeout=call_deadline_s))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return stats


def new_address(i: int) -> str:
    """The i-th address of a legitimate caller never seen before (127.0.200.1 on)."""
    return loopback_address(200, i)


async def probe_logins_from_new_addresses(
    auth_addr: str, email: str, password: str, seconds: float, call_deadline_s: float = 10
) -> LoginStats:
    """Log in with the right password, one call after another, each from an address that
    has never called before and without a device token: a user on a new network."""
    stats = LoginStats()
    end = time.monotonic() + seconds
    host, port = auth_addr.rsplit(":", 1)
    request = auth_pb2.LoginRequest(email=email, password=password)
    for i in itertools.count():
        if time.monotonic() >= end:
            break
        async with (
            SourceAddressProxy((host, int(port)), new_address(i)) as proxy,
            grpc.aio.insecure_channel(proxy.address) as channel,
        ):
            login = auth_pb2_grpc.AuthServiceStub(channel).Login
            await stats.record(functools.partial(login, request, timeout=call_deadline_s))
    return stats
