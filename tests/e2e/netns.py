"""Callers at IPv6 addresses of two /64 prefixes, in a network namespace of the test's own.

Per-address limits key an IPv6 caller by its /64 (libs/platform/admission.client_address),
since one subscriber usually holds a whole /64. Loopback here has only ::1, so the test
makes a namespace (root only), puts unique local addresses on its `lo`, and runs usersvc
there, with a PostgreSQL cluster of its own, since the host's is not reachable from inside.
All of it happens in a spawned child process: unsharing the network would cut the test
process itself off from everything it already holds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import subprocess
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs import inventory
from libs.platform.testing.net import SourceAddressProxy
from libs.platform.testing.postgres import PostgresCluster, create_database
from libs.platform.testing.topology import Wired
from services.usersvc import app as userapp
from services.usersvc.config import Settings
from user.v1 import user_pb2, user_pb2_grpc

from .flood import outcome
from .system import CHEAP_ARGON2, PASSWORD

SERVER = "fd00:0:0:a::1"
# Two callers in the server's /64 and one in another; every address sits on `lo`.
SAME_PREFIX = ("fd00:0:0:a::2", "fd00:0:0:a:ffff:ffff:ffff:fffe")
OTHER_PREFIX = "fd00:0:0:b::2"
SIGNUP_BURST = 3
HEALTH_BURST = 5


def ip_command() -> str | None:
    return shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if Path(p).exists()), None
    )


def why_not() -> str | None:
    """Why this machine cannot run the namespace, or None."""
    if not hasattr(os, "unshare"):
        return "needs os.unshare (Python 3.12+ on Linux)"
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    if ip_command() is None:
        return "needs iproute2's ip to put addresses on the namespace's lo"
    return None


def outcomes_from_ipv6_callers() -> dict[str, list[str]]:
    """Run the calls in the namespace; each caller's status codes, by what it did."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_in_namespace, args=(send,), name="ipv6-netns", daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(120):
            raise AssertionError("the namespace's child gave no answer in 120 s")
        answer = receive.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert not isinstance(answer, str), f"in the namespace: {answer}"
    return answer


def _in_namespace(out: Connection) -> None:
    try:
        os.unshare(os.CLONE_NEWNET)
        ip = ip_command()
        assert ip is not None
        setup = [["link", "set", "lo", "up"], ["-6", "addr", "add", f"{SERVER}/64", "dev", "lo"]]
        for address in (*SAME_PREFIX, OTHER_PREFIX):
            setup.append(["-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"])
        for args in setup:
            subprocess.run([ip, *args], check=True, capture_output=True)  # noqa: S603 - ours
        out.send(asyncio.run(_calls()))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
        out.send(f"{type(exc).__name__}: {exc}")
    finally:
        out.close()


async def _calls() -> dict[str, list[str]]:
    with PostgresCluster() as cluster, tempfile.TemporaryDirectory() as keys:
        wired = Wired.on_loopback(inventory.load(), Path(keys), ["usersvc"])
        settings = wired.settings(
            Settings,
            "usersvc",
            {
                "database_url": await create_database(cluster.admin_dsn),
                "grpc_host": "[::]",
                "signup_burst": SIGNUP_BURST,
                "signup_per_minute": 0.01,
                "builtin_services_burst": HEALTH_BURST,
                "builtin_services_per_second": 0.01,
                **CHEAP_ARGON2,
            },
        )
        users = await userapp.start(settings)
        try:
            return await _from_each_caller(users.port)
        finally:
            await users.stop(0)


async def _from_each_caller(port: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    callers = [("first", SAME_PREFIX[0]), ("same /64", SAME_PREFIX[1]), ("other /64", OTHER_PREFIX)]
    for k, (name, source) in enumerate(callers):
        async with (
            SourceAddressProxy((SERVER, port), source) as proxy,
            grpc.aio.insecure_channel(proxy.address) as channel,
        ):
            users = user_pb2_grpc.UserServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            # The first caller spends both buckets; the others try once each.
            tries = SIGNUP_BURST + 1 if name == "first" else 1
            found[f"signup {name}"] = [
                await outcome(
                    users.CreateUser(
                        user_pb2.CreateUserRequest(email=f"caller{k}-{i}@x.io", password=PASSWORD)
                    )
                )
                for i in range(tries)
            ]
            tries = HEALTH_BURST + 1 if name == "first" else 1
            found[f"health {name}"] = [
                await outcome(health.Check(health_pb2.HealthCheckRequest())) for _ in range(tries)
            ]
    return found
