"""Measure Login during a flood: success rate and latency percentiles.

    tools/bazel run //tests/e2e:signup_flood [-- --seconds 20 --concurrency 40]
    tools/bazel run //tests/e2e:login_flood [-- --seconds 20 --concurrency 40 --addresses 60]
    tools/bazel run //tests/e2e:account_flood [-- --seconds 20 --concurrency 200]

The services run as their real binaries, as separate processes, with production argon2
settings, a throwaway PostgreSQL and production's wiring (libs/platform/testing/topology.py);
the flood runs in a process of its own:

* `signup` (second round, finding 2): `--concurrency` callers signing up back to back with
  an address that is already taken. This process logs in with the right password
  meanwhile, one call after another. Goal: >= 99% of logins succeed, p99 under 1 s.
* `login` (third round, finding 1): `--concurrency` callers logging in with wrong passwords
  for unknown emails, each call from the next of `--addresses` loopback addresses. This
  process logs in with the right password, first from the owner's device (its device token)
  for half the flood, then from a new address each time without one. Goals: >= 99% from
  the device with p99 under 1 s, >= 95% from new addresses.
* `account` (third round): one signed-up account's `--concurrency` callers reading its own
  user and its payments back to back, with its own valid token. This process meanwhile
  calls as another user, a GetUser and a CreatePayment every 0.2 s (within the per-user
  payment rate). Goal: >= 99% of the other user's calls succeed.

Prints the numbers. A measurement, not a test: the machine's load moves the numbers, so
nothing here passes or fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs import inventory
from libs.platform.testing.launch import binary_command, wait_healthy
from libs.platform.testing.net import free_port
from libs.platform.testing.postgres import PostgresCluster, create_database
from libs.platform.testing.topology import wiring
from payment.v1 import payment_pb2, payment_pb2_grpc
from tests.e2e.flood import (
    LoginStats,
    probe_logins,
    probe_logins_from_new_addresses,
    start_account_flood,
    start_flood,
    start_login_flood,
)
from user.v1 import user_pb2, user_pb2_grpc

EMAIL = "victim@example.com"
PASSWORD = "correct horse battery"


async def sign_up(users_addr: str, auth_addr: str, email: str) -> tuple[str, str]:
    """A new account's id and access token."""
    async with (
        grpc.aio.insecure_channel(users_addr) as uc,
        grpc.aio.insecure_channel(auth_addr) as ac,
    ):
        user = await user_pb2_grpc.UserServiceStub(uc).CreateUser(
            user_pb2.CreateUserRequest(email=email, password=PASSWORD), timeout=30
        )
        login = await auth_pb2_grpc.AuthServiceStub(ac).Login(
            auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30
        )
    return user.user_id, login.token


# The other user's pace: a GetUser and a CreatePayment every this many seconds, within
# paymentsvc's per-user payment rate (PAYMENTS_PER_SECOND, 10), so that its refusals are
# the flood's doing and not its own.
OTHER_USER_INTERVAL_S = 0.2


async def other_user(addr: dict[str, str], user_id: str, token: str, seconds: float) -> LoginStats:
    """Calls as an ordinary user, one pair at a time: GetUser, then CreatePayment."""
    stats = LoginStats()
    metadata = (("authorization", f"Bearer {token}"),)
    end = time.monotonic() + seconds
    async with (
        grpc.aio.insecure_channel(addr["usersvc"]) as uc,
        grpc.aio.insecure_channel(addr["paymentsvc"]) as pc,
    ):
        users = user_pb2_grpc.UserServiceStub(uc)
        payments = payment_pb2_grpc.PaymentServiceStub(pc)
        for n in itertools.count():
            slot = time.monotonic()
            if slot >= end:
                break
            get = user_pb2.GetUserRequest(user_id=user_id)
            await stats.record(functools.partial(users.GetUser, get, metadata=metadata, timeout=5))
            pay = payment_pb2.CreatePaymentRequest(
                user_id=user_id, amount=100, idempotency_key=f"other-{n}"
            )
            await stats.record(
                functools.partial(payments.CreatePayment, pay, metadata=metadata, timeout=5)
            )
            await asyncio.sleep(max(0.0, slot + OTHER_USER_INTERVAL_S - time.monotonic()))
    return stats


async def measure_account(args: argparse.Namespace, addr: dict[str, str]) -> None:
    flooder, flooder_token = await sign_up(addr["usersvc"], addr["authsvc"], "flood@example.com")
    victim, victim_token = await sign_up(addr["usersvc"], addr["authsvc"], EMAIL)
    quiet = await other_user(addr, victim, victim_token, args.baseline_seconds)
    print(f"without flood:  {quiet.summary('calls')}", flush=True)
    flooding = start_account_flood(
        addr["usersvc"], addr["paymentsvc"], flooder, flooder_token, args.concurrency, args.seconds
    )
    await flooding.started()
    during = await other_user(addr, victim, victim_token, args.seconds)
    codes = await flooding.codes()
    print(
        f"flood:          {sum(codes.values())} calls by one account at concurrency "
        f"{args.concurrency} in {args.seconds:g} s: {codes}"
    )
    print(f"other user:     {during.summary('calls')}")
    met = during.success_rate >= 0.99
    print(f"goal (other users' calls >= 99% succeed): {'met' if met else 'NOT met'}", flush=True)


async def measure(args: argparse.Namespace, users_addr: str, auth_addr: str) -> None:
    async with (
        grpc.aio.insecure_channel(users_addr) as uc,
        grpc.aio.insecure_channel(auth_addr) as ac,
    ):
        await user_pb2_grpc.UserServiceStub(uc).CreateUser(
            user_pb2.CreateUserRequest(email=EMAIL, password=PASSWORD), timeout=30
        )
        auth = auth_pb2_grpc.AuthServiceStub(ac)
        quiet = await probe_logins(auth, EMAIL, PASSWORD, args.baseline_seconds)
        print(f"without flood:  {quiet.summary()}", flush=True)
        if args.attack == "signup":
            flooding = start_flood(users_addr, EMAIL, args.concurrency, args.seconds)
            await flooding.started()
            stats = await probe_logins(auth, EMAIL, PASSWORD, args.seconds, args.login_callers)
            codes = await flooding.codes()
            print(f"flood:          {sum(codes.values())} sign-ups in {args.seconds:g} s: {codes}")
            print(f"during flood:   {stats.summary()}")
            met = stats.success_rate >= 0.99 and stats.percentile(99) < 1.0
            print(f"goal (>= 99% succeed, p99 < 1 s): {'met' if met else 'NOT met'}", flush=True)
            return
        owner = await auth.Login(auth_pb2.LoginRequest(email=EMAIL, password=PASSWORD))
        flooding = start_login_flood(auth_addr, args.addresses, args.concurrency, args.seconds)
        await flooding.started()
        half = args.seconds / 2
        device = await probe_logins(
            auth, EMAIL, PASSWORD, half, args.login_callers, device_token=owner.device_token
        )
        new = await probe_logins_from_new_addresses(auth_addr, EMAIL, PASSWORD, half)
        codes = await flooding.codes()
    print(
        f"flood:          {sum(codes.values())} logins from {args.addresses} addresses in "
        f"{args.seconds:g} s: {codes}"
    )
    print(f"known device:   {device.summary()}")
    print(f"new addresses:  {new.summary()}")
    met = device.success_rate >= 0.99 and device.percentile(99) < 1.0
    print(f"goal (device >= 99%, p99 < 1 s): {'met' if met else 'NOT met'}")
    met = new.success_rate >= 0.95
    print(f"goal (new addresses >= 95%): {'met' if met else 'NOT met'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usersvc", required=True, help="path to the usersvc binary")
    parser.add_argument("--authsvc", required=True, help="path to the authsvc binary")
    parser.add_argument("--paymentsvc", help="path to the paymentsvc binary (--attack account)")
    parser.add_argument("--seconds", type=float, default=20.0, help="flood duration")
    parser.add_argument("--attack", choices=("signup", "login", "account"), default="signup")
    parser.add_argument("--concurrency", type=int, default=40, help="concurrent flood calls")
    parser.add_argument(
        "--addresses", type=int, default=60, help="the login flood's source addresses"
    )
    parser.add_argument("--login-callers", type=int, default=1, help="concurrent logins")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument(
        "--usersvc-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra usersvc setting, e.g. SIGNUP_BURST=1000000 to measure without the "
        "per-address sign-up limit (repeatable)",
    )
    args = parser.parse_args(argv)
    names = (
        ("usersvc", "authsvc", "paymentsvc") if args.attack == "account" else ("usersvc", "authsvc")
    )
    if args.attack == "account" and not args.paymentsvc:
        parser.error("--attack account needs --paymentsvc")
    extra: dict[str, dict[str, str]] = {name: {} for name in names}
    extra["usersvc"] = dict(kv.split("=", 1) for kv in args.usersvc_env)
    ports = {name: free_port() for name in names}
    addr = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        cluster = stack.enter_context(PostgresCluster())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flood-")))
        env = wiring(inventory.load(), work, addr)
        try:
            for name in names:
                log = stack.enter_context((work / f"{name}.log").open("wb"))
                service_env = {
                    **os.environ,
                    "DATABASE_URL": asyncio.run(create_database(cluster.admin_dsn)),
                    "GRPC_HOST": "127.0.0.1",
                    "GRPC_PORT": str(ports[name]),
                    "METRICS_PORT": "0",
                    **env[name],
                    **extra[name],
                }
                command = binary_command(getattr(args, name))
                procs.append(subprocess.Popen(command, env=service_env, stderr=log))  # noqa: S603
            for name, proc in zip(names, procs, strict=True):
                wait_healthy(addr[name], proc)
            if args.attack == "account":
                asyncio.run(measure_account(args, addr))
            else:
                asyncio.run(measure(args, addr["usersvc"], addr["authsvc"]))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
