"""The runtime bench's closed-loop steps: one point measured (calls/s, latency, the
server's CPU) and the series made of points: the services against their ceilings and
pgbench, Login, the profiled points and the other WORKERS. //tools/bench:ab measures its
points with measure() too."""

from __future__ import annotations

import argparse
import time

from tools.bench import h2load, profile
from tools.bench.cli import parse_levels
from tools.bench.h2load import H2Load
from tools.bench.load import PointResult
from tools.bench.model import CALLS_PER_REQUEST, CHAIN, Drivers, Row, Run, Session
from tools.bench.pgbench import run_pgbench
from tools.bench.startup import EMAIL, PASSWORD
from tools.bench.system import System, cpu_seconds


def run_point(
    drivers: Drivers,
    system: System,
    args: argparse.Namespace,
    *,
    method: str,
    server: str,
    concurrency: int,
    user_id: str,
    token: str,
) -> PointResult:
    return drivers.for_method(method).run(
        method,
        system.addr(server),
        concurrency,
        duration_s=args.duration,
        warmup_s=args.warmup,
        user_id=user_id,
        metrics_urls=system.metrics_urls(server),
        email=EMAIL,
        password=PASSWORD,
        token=token,
    )


def measure(
    run: Run,
    system: System,
    drivers: Drivers,
    args: argparse.Namespace,
    *,
    series: str,
    method: str,
    server: str,
    concurrency: int,
    workers: int,
    user_id: str,
    token: str,
) -> Row:
    if isinstance(drivers.for_method(method), H2Load):
        # h2load keeps connections x streams in flight, which may round the level up.
        actual = h2load.shape(concurrency).concurrency
        note = f"h2load ran concurrency {concurrency} as {actual} (connections x streams)."
        if actual != concurrency and note not in run.notes:
            run.notes.append(note)
        concurrency = actual
    pids = [system.pid(name) for name in (server, *CALLS_PER_REQUEST.get(server, ()))]
    before = sum(map(cpu_seconds, pids))
    t0 = time.monotonic()
    result = run_point(
        drivers,
        system,
        args,
        method=method,
        server=server,
        concurrency=concurrency,
        user_id=user_id,
        token=token,
    )
    elapsed = time.monotonic() - t0
    cpu = (sum(map(cpu_seconds, pids)) - before) / elapsed if elapsed > 0 else None
    row = Row(series, workers, concurrency, result, cpu)
    run.rows.append(row)
    print(
        f"[bench] {series:<16} workers={workers} c={concurrency:<3} {result.rate:8.0f}/s "
        f"p50={result.p50_ms:7.2f}ms p99={result.p99_ms:7.2f}ms errors={result.errors}",
        flush=True,
    )
    return row


def point(session: Session, series: str, method: str, server: str, c: int, workers: int = 0) -> Row:
    """measure() as the steps call it: the session's user; WORKERS of the main series
    unless told."""
    return measure(
        session.run,
        session.system,
        session.drivers,
        session.args,
        series=series,
        method=method,
        server=server,
        concurrency=c,
        workers=workers or session.args.workers,
        user_id=session.user_id,
        token=session.token,
    )


def main_series(session: Session, levels: list[int]) -> None:
    """At every level: the empty handler, GetUser, the chain, CreatePayment, and pgbench's
    SELECT and INSERT of the same rows."""
    run, system, args = session.run, session.system, session.args
    assert system.cluster is not None
    for c in levels:
        point(session, "empty handler", "GetUser", "empty", c)
        point(session, "GetUser", "GetUser", "usersvc", c)
        point(session, CHAIN, "CreatePayment", "chain", c)
        point(session, "CreatePayment", "CreatePayment", "paymentsvc", c)
        for series, query, svc in (
            ("pgbench SELECT", "GetUser", "usersvc"),
            ("pgbench INSERT", "CreatePayment", "paymentsvc"),
        ):
            res = run_pgbench(system.urls[svc], query, c, args.duration, session.user_id)
            # Filed with the main series; pgbench itself has no workers ("-").
            run.rows.append(Row(series, args.workers, c, res, None))
            print(
                f"[bench] {series:<16} c={c:<3} {res.rate:8.0f}/s "
                f"p50={res.p50_ms:.2f}ms p99={res.p99_ms:.2f}ms",
                flush=True,
            )


def login(session: Session) -> None:
    """Login at its own levels and window (--login-concurrency, --login-duration)."""
    args = session.args
    login_args = argparse.Namespace(**{**vars(args), "duration": args.login_duration})
    for c in parse_levels(args.login_concurrency):
        measure(
            session.run,
            session.system,
            session.drivers,
            login_args,
            series="Login",
            method="Login",
            server="authsvc",
            concurrency=c,
            workers=args.workers,  # the argon2 work is usersvc's
            user_id=session.user_id,
            token=session.token,
        )


def profiles(session: Session, levels: list[int]) -> None:
    """GetUser and CreatePayment again at the top level under py-spy, when it is there."""
    run, system, args = session.run, session.system, session.args
    top = max(levels)
    if not args.py_spy:
        run.notes.append("py-spy not found: no profile recorded.")
        return
    for series, method, server in (
        ("GetUser", "GetUser", "usersvc"),
        ("CreatePayment", "CreatePayment", "paymentsvc"),
    ):
        recorder = profile.record(args.py_spy, system.pid(server), args.duration + 1)
        time.sleep(0.5)  # py-spy attaches before the measured window starts
        point(session, f"{series} (profiled)", method, server, top)
        result = profile.collect(f"{server} during {series}", recorder)
        run.profiles.append(result)


def other_workers(session: Session, levels: list[int]) -> None:
    """The ceilings and the services at the two highest levels with WORKERS =
    --compare-workers; last, since it restarts the servers."""
    system, args = session.system, session.args
    if not args.compare_workers or args.compare_workers == args.workers:
        return
    n = args.compare_workers
    for name in ("usersvc", "paymentsvc", "empty", "chain"):
        system.restart(name, n)
    for c in sorted(levels)[-2:]:
        point(session, "empty handler", "GetUser", "empty", c, n)
        point(session, "GetUser", "GetUser", "usersvc", c, n)
        point(session, CHAIN, "CreatePayment", "chain", c, n)
        point(session, "CreatePayment", "CreatePayment", "paymentsvc", c, n)
