"""A/B pairs: the same closed-loop points with every server under settings A, then B,
interleaved (A B B A A B ...) so that drift on a shared machine falls on both arms alike.

    tools/bazel run //tools/bench:ab -- --name floor --a OVERLOAD_MIN_LIMIT=8 --b OVERLOAD_MIN_LIMIT=64

Writes tools/bench/results/ab-NAME.md: every point, then per series the median calls/s and
the median server CPU per call of each arm, and B/A. CPU per call is the steadier of the
two: calls/s on two shared cores moves with whatever else runs, the work a call costs much
less. A setting of an arm applies to usersvc, paymentsvc and the two ceiling servers
(restarted for each arm); authsvc keeps its own, it only hands out the token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from tools.bench import cli, closed_steps, model, startup
from tools.bench.sections import error_cell
from tools.bench.system import System

# series -> (method, server it is sent to); the servers an arm restarts are these.
SERIES = {
    "empty handler": ("GetUser", "empty"),
    "GetUser": ("GetUser", "usersvc"),
    model.CHAIN: ("CreatePayment", "chain"),
    "CreatePayment": ("CreatePayment", "paymentsvc"),
}
ARMED = ("usersvc", "paymentsvc", "empty", "chain")
Point = tuple[str, int, model.Row]  # arm, round, the measured row
Medians = dict[tuple[str, str, int], tuple[float | None, float | None]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in cli.BINARIES:
        parser.add_argument(f"--{name}", required=True, help=f"path to the {name} binary")
    parser.add_argument("--name", required=True, help="names the results file: ab-NAME.md")
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--series", default="empty handler,GetUser,two-hop chain,CreatePayment")
    parser.add_argument("--concurrency", default="32")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of arms (A B, then B A)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="INFO")
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    parser.add_argument("--results", type=Path, default=workspace / "tools/bench/results")
    args = parser.parse_args(argv)
    unknown = set(args.series.split(",")) - set(SERIES)
    if unknown:
        parser.error(f"--series: unknown {sorted(unknown)}; known: {', '.join(SERIES)}")
    if not args.a and not args.b:
        parser.error("give the arms' settings: --a KEY=VALUE and/or --b KEY=VALUE")
    for pair in args.a + args.b:
        if "=" not in pair or not pair.split("=", 1)[0]:
            parser.error(f"--a/--b take KEY=VALUE, got {pair!r}")
    return args


def _settings(pairs: list[str]) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in pairs)


def _without_binaries(argv: list[str]) -> list[str]:
    """argv as a person types it: the binaries' paths come from the BUILD file."""
    flags = {f"--{n}" for n in cli.BINARIES}
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif arg.split("=", 1)[0] not in flags:
            out.append(arg)
    return out


def _arm_order(rounds: int) -> list[str]:
    # ABBA: the arm that goes second in one pair goes first in the next.
    return [arm for i in range(rounds) for arm in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def _cpu_ms(row: model.Row) -> float | None:
    if row.server_cpu is None or not row.result.rate:
        return None
    return 1000 * row.server_cpu / row.result.rate


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(
    args: argparse.Namespace,
    argv: list[str],
    points: list[Point],
    started: dt.datetime,
    load_avg: str,
) -> str:
    series = args.series.split(",")
    levels = cli.parse_levels(args.concurrency)

    def label(pairs: list[str]) -> str:
        return ", ".join(f"`{kv}`" for kv in pairs) or "the defaults"

    rows = [
        "| round | arm | series | concurrency | calls/s | p50 ms | p99 ms | errors | CPU ms/call |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for arm, round_, row in points:
        errors = error_cell(row.result.errors)
        rows.append(
            f"| {round_} | {arm} | {row.series} | {row.concurrency} | {row.result.rate:,.0f} | "
            f"{row.result.p50_ms:.2f} | {row.result.p99_ms:.2f} | {errors} | "
            f"{_fmt(_cpu_ms(row), '.3f')} |"
        )
    return "\n".join(
        [
            f"# A/B: {args.name}",
            "",
            (
                f"{started:%Y-%m-%d %H:%M} UTC, load average at the start {load_avg}; "
                f"{args.rounds} rounds, arms interleaved A B, B A, ...; WORKERS={args.workers}, "
                f"{args.duration:g} s measured after {args.warmup:g} s warm-up per point, "
                "h2load closed loop (tools/bench/bench.py's points). Rerun:"
            ),
            "",
            "    tools/bazel run //tools/bench:ab -- " + " ".join(argv),
            "",
            f"- A: {label(args.a)}",
            f"- B: {label(args.b)}",
            "",
            "## Medians",
            "",
            *summarize(series, levels, points),
            "",
            *_ceiling_shares(levels, points),
            "## Every point",
            "",
            *rows,
            "",
        ]
    )


def _medians(points: list[Point]) -> Medians:
    """(arm, series, concurrency) -> median calls/s and median CPU ms per call."""
    rows: dict[tuple[str, str, int], list[model.Row]] = defaultdict(list)
    for arm, _, row in points:
        rows[(arm, row.series, row.concurrency)].append(row)
    return {
        key: (_median([r.result.rate for r in rs]), _median([_cpu_ms(r) for r in rs]))
        for key, rs in rows.items()
    }


def _ceiling_shares(levels: list[int], points: list[Point]) -> list[str]:
    """GetUser / empty handler and CreatePayment / chain per arm, from the median rates."""
    medians = _medians(points)
    out = []
    for part, whole in (("GetUser", "empty handler"), ("CreatePayment", model.CHAIN)):
        for c in levels:
            shares = []
            for arm in "AB":
                numerator = medians.get((arm, part, c), (None, None))[0]
                denominator = medians.get((arm, whole, c), (None, None))[0]
                if numerator is not None and denominator:
                    shares.append(f"{arm} {numerator / denominator:.0%}")
            if shares:
                out.append(f"- {part} / {whole} at c={c}: {', '.join(shares)}")
    return [*out, ""] if out else []


def summarize(series: list[str], levels: list[int], points: list[Point]) -> list[str]:
    medians = _medians(points)
    out = [
        "| series | concurrency | A calls/s | B calls/s | B/A | A CPU ms/call | B CPU ms/call | B/A |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in series:
        for c in levels:
            (rate_a, cpu_a), (rate_b, cpu_b) = (
                medians.get((arm, name, c), (None, None)) for arm in "AB"
            )
            out.append(
                f"| {name} | {c} | {_fmt(rate_a, ',.0f')} | {_fmt(rate_b, ',.0f')} | "
                f"{_ratio(rate_b, rate_a)} | {_fmt(cpu_a, '.3f')} | "
                f"{_fmt(cpu_b, '.3f')} | {_ratio(cpu_b, cpu_a)} |"
            )
    return out


def _ratio(b: float | None, a: float | None) -> str:
    return "-" if a is None or b is None or not a else f"{b / a:.2f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    shown = _without_binaries(argv)
    levels = cli.parse_levels(args.concurrency)
    started = dt.datetime.now(dt.UTC)
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    h2, why = startup.choose_h2load("h2load")
    assert h2 is not None, why
    system = System(
        {**{n: getattr(args, n) for n in cli.BINARIES}, "chain": args.empty},
        log_level=args.log_level,
    )
    drivers = model.Drivers(h2, None)
    run = model.Run(workers=args.workers)
    point_args = argparse.Namespace(duration=args.duration, warmup=args.warmup)
    points: list[Point] = []
    arms = {"A": _settings(args.a), "B": _settings(args.b)}
    keys = set(arms["A"]) | set(arms["B"])
    try:
        system.start_database()
        system.environments()
        user_id, token, _ = startup.start_servers(system, args.workers)
        for i, arm in enumerate(_arm_order(args.rounds)):
            for name in ARMED:
                for key in keys:
                    system.env[name].pop(key, None)
                system.env[name].update(arms[arm])
                system.restart(name, args.workers)
            for series in args.series.split(","):
                method, server = SERIES[series]
                for c in levels:
                    print(f"[ab] round {i // 2 + 1} arm {arm}", flush=True)
                    row = closed_steps.measure(
                        run,
                        system,
                        drivers,
                        point_args,
                        series=series,
                        method=method,
                        server=server,
                        concurrency=c,
                        workers=args.workers,
                        user_id=user_id,
                        token=token,
                    )
                    points.append((arm, i // 2 + 1, row))
    finally:
        system.stop()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"ab-{args.name}.md"
    out.write_text(render(args, shown, points, started, load_avg))
    print("\n".join(summarize(args.series.split(","), levels, points)))
    print(f"[ab] wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
