"""Runtime benchmark: calls/s and latency of GetUser, CreatePayment and Login, against the
empty-handler, two-hop chain and pgbench ceilings (closed loop), then latency and goodput of
GetUser and CreatePayment against offered load (open loop); writes the runtime and open-loop
sections of BENCHMARKS.md and the open-loop plot.

    tools/bench/run.sh [--duration 3 --concurrency 1,8,32,64 --py-spy PATH]

Everything runs on loopback: a throwaway PostgreSQL, the three service binaries, bench-only
empty servers, and the load: h2load (tools/bench/h2load.py) for the empty handler, the chain,
GetUser and CreatePayment when it is installed (--load), Python client processes
(tools/bench/load.py) for Login and as the fallback. The open loop (tools/bench/overload.py)
comes from the C++ driver given with --open-loop-driver, which tools/bench/run.sh builds and
passes (native_openloop.py), or else from Python client processes (openloop.py), which
share the cores with the servers and run short of CPU above about half the peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import shutil
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from tools.bench import h2load, openloop, overload, overload_report, profile
from tools.bench.h2load import H2Load
from tools.bench.load import ClosedLoopDriver, LoadGenerator, PointResult
from tools.bench.native_openloop import NativeOpenLoopDriver
from tools.bench.openloop import OpenLoopDriver, OpenLoopGenerator
from tools.bench.pgbench import run_pgbench
from tools.bench.sections import error_cell, replace_section
from tools.bench.system import DATABASES, System, cpu_seconds
from user.v1 import user_pb2, user_pb2_grpc

EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway local user
GOAL_GETUSER = 0.75  # of the empty handler
GOAL_CREATEPAYMENT = 0.60  # of the two-hop chain
# Services a server calls on every request: their CPU counts towards its "server CPU".
CALLS_PER_REQUEST = {"paymentsvc": ("usersvc",), "chain": ("empty",)}
CHAIN = "two-hop chain"
BINARIES = ("usersvc", "paymentsvc", "authsvc", "empty")  # --NAME PATH, from the BUILD file


@dataclass(frozen=True)
class Row:
    series: str  # e.g. "GetUser", "empty handler", "pgbench SELECT"
    workers: int
    concurrency: int
    result: PointResult
    server_cpu: float | None  # CPU cores the server processes used on average


@dataclass
class Drivers:
    """h2load for the methods it can send, when chosen; the Python client for the rest."""

    c_client: H2Load | None
    python: LoadGenerator | None  # None when nothing needs it

    def for_method(self, method: str) -> ClosedLoopDriver:
        if self.c_client is not None and method in h2load.SERVICES:
            return self.c_client
        if self.python is None:
            raise RuntimeError(f"no load generator started for {method}")
        return self.python

    def close(self) -> None:
        if self.python is not None:
            self.python.close()


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    profiles: list[profile.Profile | str] = field(default_factory=list)
    auth_enforced: bool = False
    notes: list[str] = field(default_factory=list)
    h2load_version: str = ""  # empty: the Python client produced every series
    workers: int = 1  # WORKERS of the main series
    open_notes: list[str] = field(default_factory=list)

    def series(self, name: str, workers: int | None = None) -> list[Row]:
        workers = self.workers if workers is None else workers
        return [r for r in self.rows if r.series == name and r.workers == workers]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in BINARIES:
        parser.add_argument(f"--{name}", required=True, help=f"path to the {name} binary")
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    parser.add_argument("--out", type=Path, default=Path(workspace) / "BENCHMARKS.md")
    parser.add_argument("--concurrency", default="1,4,8,16,32,64")
    # Login hashes the password with argon2 at production cost (tens of ms of CPU per call,
    # hundreds under load), so it gets its own, lower levels and a longer window.
    parser.add_argument("--login-concurrency", default="1,2,4")
    parser.add_argument("--login-duration", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per point")
    parser.add_argument(
        "--load",
        choices=("h2load", "python"),
        help="load generator for the empty handler, GetUser and CreatePayment (Login always "
        "uses the Python client); default: h2load when it is on PATH, else python",
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes of the Python client"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="WORKERS (server processes sharing the port) of usersvc, paymentsvc and the "
        "empty server in the main series; 2 uses both cores of this machine",
    )
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=1,
        help="also run GetUser/CreatePayment/empty with WORKERS=N at the two highest levels "
        "(0: skip)",
    )
    parser.add_argument(
        "--open-loop",
        default="0.2,0.4,0.6,0.8,1.0,1.2,1.5,2.0",
        help="open-loop offered loads, as shares of each method's closed-loop peak ('' skips)",
    )
    parser.add_argument("--open-loop-duration", type=float, default=5.0)
    parser.add_argument("--open-loop-warmup", type=float, default=1.0)
    parser.add_argument(
        "--open-loop-compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="repeat every open-loop share in each --open-loop-arm",
    )
    parser.add_argument(
        "--open-loop-arm",
        action="append",
        type=overload.parse_arm,
        default=None,
        metavar="NAME:KEY=VALUE,...",
        help="an arm of the open loop: every share again with these settings on the services "
        "involved; repeatable (default: "
        + "; ".join(
            f"'{name}:" + ",".join(f"{k}={v}" for k, v in settings.items()) + "'"
            for name, settings in overload.DEFAULT_ARMS
        )
        + ")",
    )
    parser.add_argument(
        "--open-loop-sample-share",
        type=float,
        default=1.0,
        help="share of the open-loop calls the Python driver offers (h2load the rest). 1, "
        "the default, starts every call's deadline at its scheduled time, which a stream "
        "bound needs (h2load starts it when a call leaves its queue); below 1 the servers "
        "keep more of the cores",
    )
    parser.add_argument(
        "--open-loop-driver",
        type=Path,
        default=None,
        metavar="MICRO_OPENLOOP",
        help="the C++ open-loop driver (tools/cpp_build.sh //openloop:micro_openloop prints "
        "its path), in place of the Python one: a fraction of its CPU per call, so the servers "
        "keep the cores (tools/bench/run.sh builds it and passes it)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=openloop.DEFAULT_DEADLINE_S,
        help="every open-loop call's gRPC deadline, seconds: goodput counts OK answers within it",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=Path(workspace) / "tools/bench/results/openloop.png",
        help="where the open-loop plot goes (linked from --out)",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every server (services and empty servers), e.g. "
        "OVERLOAD_QUEUE_SHEDDING=false for an A/B; repeatable",
    )
    parser.add_argument("--py-spy", default=os.environ.get("PY_SPY") or shutil.which("py-spy"))
    parser.add_argument("--log-level", default="INFO", help="the services' LOG_LEVEL")
    parser.add_argument(
        "--durable",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL flushes every commit to disk, as in production (--no-durable: the "
        "test clusters' fsync=off, synchronous_commit=off)",
    )
    return parser.parse_args(argv)


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
    if not enforced:  # the ceilings verify tokens only where the services do
        system.env["empty"].pop("AUTHSVC_ADDR", None)
        system.env["chain"].pop("AUTHSVC_ADDR", None)
    system.start("empty", workers)
    system.start("chain", workers)
    return user_id, token, enforced


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


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "CPUs": str(os.cpu_count()),
        "CPU model": cpu,
        "memory": mem,
        "Python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kernel": platform.release(),
    }


def _fmt_rate(row: Row | None) -> str:
    return "-" if row is None else f"{row.result.rate:,.0f}"


def _table(rows: list[Row]) -> str:
    out = [
        "| series | WORKERS | concurrency | calls/s | p50 ms | p99 ms | errors | server CPU (cores) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        errors = error_cell(r.result.errors)
        cpu = "-" if r.server_cpu is None else f"{r.server_cpu:.2f}"
        workers = "-" if r.series.startswith("pgbench") else str(r.workers)
        out.append(
            f"| {r.series} | {workers} | {r.concurrency} | {r.result.rate:,.0f} | "
            f"{r.result.p50_ms:.2f} | {r.result.p99_ms:.2f} | {errors} | {cpu} |"
        )
    return "\n".join(out)


def _peak(rows: list[Row]) -> Row | None:
    return max(rows, key=lambda r: r.result.rate, default=None)


def _share(part: Row | None, whole: Row | None, goal: float | None, lead: str = "") -> str | None:
    if part is None or whole is None or not whole.result.rate:
        return None
    ratio = part.result.rate / whole.result.rate
    verdict = f"; goal >= {goal:.0%}: **{'met' if ratio >= goal else 'not met'}**" if goal else ""
    return (
        f"- {lead}{part.series} peak {part.result.rate:,.0f}/s (c={part.concurrency}) is "
        f"**{ratio:.0%}** of the {whole.series} peak {whole.result.rate:,.0f}/s "
        f"(c={whole.concurrency}){verdict}."
    )


def _goals(run: Run) -> list[str]:
    peak = {
        name: _peak(run.series(name))
        for name in ("GetUser", "empty handler", "CreatePayment", CHAIN, "pgbench INSERT")
    }
    lines = [
        _share(peak["GetUser"], peak["empty handler"], GOAL_GETUSER),
        _share(peak["CreatePayment"], peak[CHAIN], GOAL_CREATEPAYMENT),
        _share(peak["CreatePayment"], peak["pgbench INSERT"], None, "For reference: "),
    ]
    out = [line for line in lines if line]
    out.append(
        "- Latency goals are open-loop goals now (a closed loop's p99 at concurrency c is "
        "bounded below by c / throughput): see the open-loop section."
    )
    return out


def _ratios(run: Run) -> str:
    out = [
        (
            "| concurrency | GetUser / empty handler | CreatePayment / two-hop chain | "
            "GetUser / pgbench SELECT | CreatePayment / pgbench INSERT |"
        ),
        "| ---: | ---: | ---: | ---: | ---: |",
    ]

    def at(name: str, c: int) -> Row | None:
        return next((r for r in run.series(name) if r.concurrency == c), None)

    def ratio(a: Row | None, b: Row | None) -> str:
        if a is None or b is None or not b.result.rate:
            return "-"
        return f"{a.result.rate / b.result.rate:.0%}"

    for c in sorted({r.concurrency for r in run.series("GetUser")}):
        out.append(
            f"| {c} | {ratio(at('GetUser', c), at('empty handler', c))} | "
            f"{ratio(at('CreatePayment', c), at(CHAIN, c))} | "
            f"{ratio(at('GetUser', c), at('pgbench SELECT', c))} | "
            f"{ratio(at('CreatePayment', c), at('pgbench INSERT', c))} |"
        )
    return "\n".join(out)


def _profiles(run: Run, args: argparse.Namespace) -> str:
    if not run.profiles:
        return (
            "Not recorded: py-spy was not found. `pip install py-spy` and rerun with "
            "`-- --py-spy $(command -v py-spy)`."
        )
    parts = []
    for p in run.profiles:
        if isinstance(p, str):
            parts.append(f"- {p}")
            continue
        cats = "\n".join(f"| {name} | {share:.1%} |" for name, share in p.categories)
        tops = "\n".join(f"| `{frame}` | {share:.1%} |" for frame, share in p.top_self)
        parts.append(
            f"#### {p.name} ({p.samples} samples)\n\n| where (innermost matching frame) | "
            f"share of samples |\n| --- | ---: |\n{cats}\n\n| top self time | share |\n"
            f"| --- | ---: |\n{tops}"
        )
    return "\n\n".join(parts)


def _fill(text: str) -> str:
    return textwrap.fill(text, width=92, break_on_hyphens=False)


def _load_method(run: Run, args: argparse.Namespace) -> str:
    window = f"{args.duration:g} s measured after {args.warmup:g} s warm-up per point"
    login = (
        f"Login {args.login_duration:g} s at {args.login_concurrency}"
        if parse_levels(args.login_concurrency)
        else "Login not measured"
    )
    if not run.h2load_version:
        return (
            f"Closed-loop load from {args.client_processes} separate client processes "
            f"(grpc.aio, {window}; {login})"
        )
    if parse_levels(args.login_concurrency):
        login += (
            f" from {args.client_processes} Python client processes (grpc.aio; argon2 holds "
            "it to a few calls/s)"
        )
    return (
        f"Closed-loop load from {run.h2load_version} (a C HTTP/2 client, one thread; up to "
        f"{h2load.MAX_CONNECTIONS} connections, streams per connection making up the "
        f"concurrency) for the empty handler, the two-hop chain, GetUser and CreatePayment, "
        f"{window}; {login}"
    )


def _load_caveat(run: Run, cpus: str) -> str:
    if not run.h2load_version:
        return (
            f"the client processes, the services and PostgreSQL share the same {cpus} CPUs, "
            "so every figure is a whole-machine figure; the client's own cost is part of "
            "every series, the empty-handler ceiling included, which keeps the ratios fair."
        )
    return (
        f"h2load, the services and PostgreSQL share the same {cpus} CPUs, so every figure "
        "is a whole-machine figure; h2load's own cost is part of every series, the "
        "empty-handler ceiling included, which keeps the ratios fair. h2load sees HTTP 200 "
        'for a failed gRPC call (the status travels in the trailers), so "errors" are the '
        "non-OK codes the server itself counted (grpc_server_handled_total of every worker, "
        "over the whole point, warm-up included) plus any non-2xx answer or broken stream "
        "h2load saw; CANCELLED up to the concurrency is left out: h2load ends a point by "
        "closing its connections, which cancels the calls in flight. p50/p99 are h2load's "
        "per-request times (--log-file)."
    )


def render(run: Run, args: argparse.Namespace, started: dt.datetime, load_avg: str) -> str:
    info = machine()
    info["load generator"] = (
        f"{run.h2load_version} (Login: grpc.aio)"
        if run.h2load_version
        else "grpc.aio client processes"
    )
    mach = "\n".join(f"| {k} | {v} |" for k, v in info.items())
    caveat = _fill(
        f"**Read the numbers with this in mind:** {_load_caveat(run, info['CPUs'])} "
        '"server CPU" is the CPU the measured server\'s processes used (cores, averaged '
        "over the point); CreatePayment's includes usersvc's, which checks each payment's "
        "user, and the two-hop chain's its second hop's. Every server runs the services' "
        "overload protection (libs/platform/overload): calls it refused are among the errors "
        "(RESOURCE_EXHAUSTED), not the calls/s."
    )
    main_rows = [r for r in run.rows if r.workers == run.workers]
    worker_rows = [r for r in run.rows if r.workers != run.workers]
    compare = ""
    if worker_rows:
        levels = {r.concurrency for r in worker_rows}
        base = [
            r
            for r in main_rows
            if r.concurrency in levels and r.series in {w.series for w in worker_rows}
        ]
        compare = (
            f"### WORKERS={run.workers} vs WORKERS={args.compare_workers}\n\n"
            "Same load with the servers started with `WORKERS` "
            f"= {args.compare_workers} (libs/platform/runner.py: forked workers sharing the "
            "port via SO_REUSEPORT). For CreatePayment, usersvc and paymentsvc both run "
            "that many workers.\n\n"
            + _table(sorted(base + worker_rows, key=lambda r: (r.series, r.concurrency, r.workers)))
        )
    notes = "\n".join(f"- {n}" for n in run.notes)
    return f"""## Runtime

{started:%Y-%m-%d %H:%M} UTC. Rerun: `tools/bazel run //tools/bench:bench` (this section and
the open-loop one; add `-- --py-spy $(command -v py-spy)` for the profile).
{_fill(_load_method(run, args) + ",")}
loopback only, services at LOG_LEVEL={args.log_level}
with default pool sizes and argon2 at its production defaults. Auth:
{
        "GetUser and CreatePayment required a bearer token from Login (sent)"
        if run.auth_enforced
        else "not enforced by usersvc in this tree (the token from Login was sent anyway)"
    }.
Load average when the run started: {load_avg}.

| machine | |
| --- | --- |
{mach}

{caveat}

### Goals

{chr(10).join(_goals(run))}

### Results (WORKERS={run.workers})

{_table(main_rows)}

### Ratios to the ceilings

{_ratios(run)}

{compare}

### Profile (py-spy, {args.duration:g} s at concurrency {max(parse_levels(args.concurrency))})

{_profiles(run, args)}

{"### Notes" + chr(10) + chr(10) + notes if notes else ""}
"""


def _open_point(
    h2: H2Load,
    sampler: OpenLoopDriver,
    system: System,
    args: argparse.Namespace,
    user_id: str,
    token: str,
    *,
    method: str,
    server: str,
    peak: Row,
    share: float,
    arm: str,
) -> overload.OpenRow:
    row = overload.measure(
        h2,
        sampler,
        method=method,
        target=system.addr(server),
        metrics_urls=system.metrics_urls(server),
        rate=share * peak.result.rate,
        share=share,
        peak=peak.result.rate,
        duration_s=args.open_loop_duration,
        warmup_s=args.open_loop_warmup,
        user_id=user_id,
        token=token,
        arm=arm,
        deadline_s=args.deadline,
        sample_share=args.open_loop_sample_share,
    )
    s = row.sample
    print(
        f"[bench] open {method:<14} {share:4.0%} {row.offered:7.0f}/s offered "
        f"{row.good_in_deadline:7.0f}/s ok in {args.deadline:g}s "
        f"{row.goodput:7.0f}/s ok {row.shed:7.0f}/s shed p50={s.ok_p50_ms:.1f} "
        f"p99={s.ok_p99_ms:.1f} shed p99={s.shed_p99_ms:.1f} limit={row.limit:.0f} "
        f"shed_by={row.shed_by} "
        f"errors={row.errors} client={dict(s.errors)} lag99={s.lag_p99_ms:.0f} "
        f"client_cpu={s.client_cpu:.2f} arm={arm} server_stalls={row.stalls}",
        flush=True,
    )
    return row


def open_loop(
    run: Run,
    system: System,
    h2: H2Load | None,
    args: argparse.Namespace,
    user_id: str,
    token: str,
) -> tuple[list[overload.OpenRow], overload.Ledger | None]:
    """GetUser and CreatePayment at shares of their closed-loop peaks, then the ledger."""
    shares = [float(x) for x in args.open_loop.split(",") if x.strip()]
    if not shares:
        return [], None
    if h2 is None:
        run.notes.append("Open loop not measured: it needs h2load (nghttp2-client).")
        return [], None
    rows: list[overload.OpenRow] = []
    ledger_from = overload.count_rows(system.urls["paymentsvc"])
    sampler: OpenLoopDriver = (
        NativeOpenLoopDriver(args.open_loop_driver)
        if args.open_loop_driver
        else OpenLoopGenerator(args.client_processes)
    )
    try:
        for method, server in (("GetUser", "usersvc"), ("CreatePayment", "paymentsvc")):
            peak = _peak(run.series(method))
            if peak is None:
                continue

            point = functools.partial(
                _open_point,
                h2,
                sampler,
                system,
                args,
                user_id,
                token,
                method=method,
                server=server,
                peak=peak,
            )
            rows += [point(share=x, arm=overload.PROTECTED) for x in shares]
            arms = args.open_loop_arm or list(overload.DEFAULT_ARMS)
            for arm, settings in arms if args.open_loop_compare else []:
                # The same shares in this arm, right after: what its settings change.
                involved = (server, *CALLS_PER_REQUEST.get(server, ()))
                saved = {name: dict(system.env[name]) for name in involved}
                for name in involved:
                    system.env[name].update(settings)
                    system.restart(name, args.workers)
                try:
                    rows += [point(share=x, arm=arm) for x in shares]
                finally:
                    for name in involved:
                        system.env[name].clear()
                        system.env[name].update(saved[name])
                        system.restart(name, args.workers)
    finally:
        sampler.close()
    payments = [r for r in rows if r.method == "CreatePayment"]
    ledger = (
        overload.check_ledger(system.urls["paymentsvc"], payments, ledger_from)
        if payments
        else None
    )
    if ledger is not None:
        print(f"[bench] ledger: {overload_report.ledger_line(ledger)}", flush=True)
    return rows, ledger


def parse_levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = parse_levels(args.concurrency)
    started = dt.datetime.now(dt.UTC)
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    run = Run()
    driver, why_python = choose_h2load(args.load)
    if driver is None:
        run.notes.append(why_python)
    else:
        run.h2load_version = driver.version()
    system = System(
        {
            **{n: getattr(args, n) for n in BINARIES},
            "chain": args.empty,  # the same binary in its CHAIN_TO role
        },
        log_level=args.log_level,
        durable=args.durable,
    )
    needs_python = driver is None or bool(parse_levels(args.login_concurrency))
    drivers = Drivers(driver, LoadGenerator(args.client_processes) if needs_python else None)
    try:
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

        def point(series: str, method: str, server: str, c: int, workers: int = 0) -> Row:
            return measure(
                run,
                system,
                drivers,
                args,
                series=series,
                method=method,
                server=server,
                concurrency=c,
                workers=workers or args.workers,
                user_id=user_id,
                token=token,
            )

        assert system.cluster is not None
        for c in levels:
            point("empty handler", "GetUser", "empty", c)
            point("GetUser", "GetUser", "usersvc", c)
            point(CHAIN, "CreatePayment", "chain", c)
            point("CreatePayment", "CreatePayment", "paymentsvc", c)
            for series, query, svc in (
                ("pgbench SELECT", "GetUser", "usersvc"),
                ("pgbench INSERT", "CreatePayment", "paymentsvc"),
            ):
                res = run_pgbench(system.urls[svc], query, c, args.duration, user_id)
                # Filed with the main series; pgbench itself has no workers ("-").
                run.rows.append(Row(series, args.workers, c, res, None))
                print(
                    f"[bench] {series:<16} c={c:<3} {res.rate:8.0f}/s "
                    f"p50={res.p50_ms:.2f}ms p99={res.p99_ms:.2f}ms",
                    flush=True,
                )

        login_args = argparse.Namespace(**{**vars(args), "duration": args.login_duration})
        for c in parse_levels(args.login_concurrency):
            measure(
                run,
                system,
                drivers,
                login_args,
                series="Login",
                method="Login",
                server="authsvc",
                concurrency=c,
                workers=args.workers,  # the argon2 work is usersvc's
                user_id=user_id,
                token=token,
            )

        top = max(levels)
        if args.py_spy:
            for series, method, server in (
                ("GetUser", "GetUser", "usersvc"),
                ("CreatePayment", "CreatePayment", "paymentsvc"),
            ):
                recorder = profile.record(args.py_spy, system.pid(server), args.duration + 1)
                time.sleep(0.5)  # py-spy attaches before the measured window starts
                point(f"{series} (profiled)", method, server, top)
                result = profile.collect(f"{server} during {series}", recorder)
                run.profiles.append(result)
        else:
            run.notes.append("py-spy not found: no profile recorded.")

        open_rows, ledger = open_loop(run, system, driver, args, user_id, token)

        if args.compare_workers and args.compare_workers != args.workers:
            n = args.compare_workers
            for name in ("usersvc", "paymentsvc", "empty", "chain"):
                system.restart(name, n)
            for c in sorted(levels)[-2:]:
                point("empty handler", "GetUser", "empty", c, n)
                point("GetUser", "GetUser", "usersvc", c, n)
                point(CHAIN, "CreatePayment", "chain", c, n)
                point("CreatePayment", "CreatePayment", "paymentsvc", c, n)
    finally:
        drivers.close()
        system.stop()
    dbs = ", ".join(DATABASES.values())
    settings = (
        "PostgreSQL's defaults (fsync=on, synchronous_commit=on: every acknowledged commit "
        "is on disk, as a payment must be)"
        if args.durable
        else "fsync=off and synchronous_commit=off (the test cluster settings, --no-durable)"
    )
    run.notes.append(
        f"Databases ({dbs}) were throwaway; PostgreSQL ran with {settings}, for the services "
        "and pgbench alike."
    )
    replace_section(args.out, "runtime", render(run, args, started, load_avg))
    if open_rows:
        overload_report.draw(open_rows, args.plot)
        link = os.path.relpath(args.plot.resolve(), args.out.resolve().parent)
        section = overload_report.render(
            open_rows,
            ledger,
            started=f"{started:%Y-%m-%d %H:%M} UTC, the same run as the runtime section",
            workers=args.workers,
            duration_s=args.open_loop_duration,
            warmup_s=args.open_loop_warmup,
            plot=link,
            notes=run.open_notes,
            sample_share=args.open_loop_sample_share,
            native_driver=args.open_loop_driver is not None,
        )
        replace_section(args.out, "openloop", section)
        print(f"[bench] wrote {args.plot}", flush=True)
    print(f"[bench] wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
