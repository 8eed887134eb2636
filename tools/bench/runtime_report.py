"""The runtime section of BENCHMARKS.md from a finished run: the machine, the goals, the
closed-loop tables, the ratios to the ceilings, the profiles and the notes. Only text here,
so the wording can change without touching what is measured."""

from __future__ import annotations

import argparse
import datetime as dt
import textwrap

from tools.bench import h2load, model
from tools.bench.cli import parse_levels
from tools.bench.machine import machine
from tools.bench.model import CHAIN, Row, Run
from tools.bench.sections import error_cell
from tools.bench.system import DATABASES

GOAL_GETUSER = 0.75  # of the empty handler
GOAL_CREATEPAYMENT = 0.60  # of the two-hop chain


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
        name: model.peak(run.series(name))
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


def databases_note(durable: bool) -> str:
    dbs = ", ".join(DATABASES.values())
    settings = (
        "PostgreSQL's defaults (fsync=on, synchronous_commit=on: every acknowledged commit "
        "is on disk, as a payment must be)"
        if durable
        else "fsync=off and synchronous_commit=off (the test cluster settings, --no-durable)"
    )
    return (
        f"Databases ({dbs}) were throwaway; PostgreSQL ran with {settings}, for the services "
        "and pgbench alike."
    )
