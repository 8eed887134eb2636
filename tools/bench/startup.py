"""Bringing the runtime bench's system up: the closed-loop drivers, the servers with their
settings, and the bench user every call is made as. Shared with //tools/bench:ab, which
starts the same system for its A/B points."""

from __future__ import annotations

import argparse
import shutil

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from tools.bench.cli import BINARIES, parse_levels
from tools.bench.h2load import H2Load
from tools.bench.load import LoadGenerator
from tools.bench.model import Drivers, Run, Session
from tools.bench.system import System
from user.v1 import user_pb2, user_pb2_grpc

EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway local user


def choose_h2load(requested: str | None) -> tuple[H2Load | None, str]:
    """The h2load driver, or None and why the Python client produces every series."""
    if requested == "python":
        return None, "--load python: the Python client (tools/bench/load.py) produced every series."
    found = shutil.which("h2load")
    if found:
        return H2Load(found), ""
    if requested == "h2load":
        raise SystemExit("--load h2load: h2load is not on PATH (Debian package nghttp2-client)")
    return None, (
        "h2load was not on PATH (Debian package nghttp2-client), so the Python client "
        "(tools/bench/load.py) produced every series."
    )


def h2load_driver(run: Run, requested: str | None) -> H2Load | None:
    """choose_h2load(), and what the report says of the choice: h2load's version, or why
    the Python client ran every series."""
    driver, why_python = choose_h2load(requested)
    if driver is None:
        run.notes.append(why_python)
    else:
        run.h2load_version = driver.version()
    return driver


def system_under_test(args: argparse.Namespace) -> System:
    return System(
        {
            **{n: getattr(args, n) for n in BINARIES},
            "chain": args.empty,  # the same binary in its CHAIN_TO role
        },
        log_level=args.log_level,
        durable=args.durable,
    )


def load_drivers(h2: H2Load | None, args: argparse.Namespace) -> Drivers:
    # h2load cannot send Login, so the Python client is needed for it too.
    needs_python = h2 is None or bool(parse_levels(args.login_concurrency))
    return Drivers(h2, LoadGenerator(args.client_processes) if needs_python else None)


def seed(system: System) -> tuple[str, str, bool]:
    """Create the bench user, log in; returns (user_id, token, auth enforced on GetUser)."""
    with grpc.insecure_channel(system.addr("usersvc")) as users_ch:
        users = user_pb2_grpc.UserServiceStub(users_ch)
        created = users.CreateUser(
            user_pb2.CreateUserRequest(email=EMAIL, password=PASSWORD, display_name="Bench"),
            timeout=30,
        )
        with grpc.insecure_channel(system.addr("authsvc")) as auth_ch:
            login = auth_pb2_grpc.AuthServiceStub(auth_ch).Login(
                auth_pb2.LoginRequest(email=EMAIL, password=PASSWORD), timeout=30
            )
        try:
            users.GetUser(user_pb2.GetUserRequest(user_id=created.user_id), timeout=10)
            enforced = False
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            enforced = True
    return created.user_id, login.token, enforced


def start_servers(system: System, workers: int) -> tuple[str, str, bool]:
    """Start the services, seed the bench user, then the ceiling servers; returns seed()'s
    answer. The database and environments must be ready."""
    # authsvc's Login is bound by argon2 in usersvc; one worker is plenty for it.
    for name in ("usersvc", "authsvc", "paymentsvc"):
        system.start(name, 1 if name == "authsvc" else workers)
    user_id, token, enforced = seed(system)
    # The ceilings verify tokens only where the services do.
    for ceiling in ("empty", "chain"):
        system.env[ceiling]["VERIFY_TOKENS"] = "true" if enforced else "false"
    system.start("empty", workers)
    system.start("chain", workers)
    return user_id, token, enforced


def start(run: Run, system: System, drivers: Drivers, args: argparse.Namespace) -> Session:
    """The database, every server's settings (--service-env on top), the servers and the
    bench user."""
    system.start_database()
    system.environments()
    extra = dict(kv.split("=", 1) for kv in args.service_env)
    for env in system.env.values():
        env.update(extra)
    if extra:
        settings = ", ".join(f"`{k}={v}`" for k, v in sorted(extra.items()))
        run.notes.append(f"Every server ran with {settings} (--service-env).")
        run.open_notes.append(f"Every server ran with {settings} (--service-env).")
    run.workers = args.workers
    user_id, token, run.auth_enforced = start_servers(system, args.workers)
    print(f"[bench] system up; auth enforced: {run.auth_enforced}", flush=True)
    return Session(run, system, drivers, args, user_id, token)
