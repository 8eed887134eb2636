"""The open-loop section of BENCHMARKS.md and its plot (tools/bench/overload.py measures)."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from tools.bench.overload import SAMPLE_MIN, SAMPLE_SHARE, Ledger, OpenRow
from tools.bench.sections import error_cell

GOAL_P99_MS = 20.0
GOAL_P99_UP_TO = 0.8  # of the peak
GOAL_GOODPUT = 0.9  # of the peak, at the top share
GOAL_ADMITTED_P99_MS = 50.0  # at the top share
GOAL_SHED_MS = 5.0  # shed calls answered within, at the top share (their p99)
METHODS = ("GetUser", "CreatePayment")


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _share(row: OpenRow, reason: str) -> str:
    total = sum(row.shed_by.values())
    return f"{row.shed_by.get(reason, 0) / total:.0%}" if total else "-"


def table(rows: Sequence[OpenRow]) -> str:
    out = [
        (
            "| offered (of peak) | offered/s | started/s | goodput/s (of peak) | shed/s (limit, queue) | "
            "admitted p50 ms | admitted p99 ms | shed p50 ms | shed p99 ms | every answer p99 ms "
            "(h2load) | other errors | limit | sample calls |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        s = r.sample
        errors = error_cell(r.errors)
        out.append(
            f"| {r.share:.0%} | {r.offered:,.0f} | {r.started:,.0f} | {r.goodput:,.0f} "
            f"({r.goodput / r.peak:.0%}) | {r.shed:,.0f} ({_share(r, 'limit')}, "
            f"{_share(r, 'queue')}) | {_ms(s.ok_p50_ms)} | "
            f"{_ms(s.ok_p99_ms)} | {_ms(s.shed_p50_ms)} | {_ms(s.shed_p99_ms)} | "
            f"{_ms(r.all_p99_ms)} | {errors} | {r.limit:.0f} | {s.sent:,} |"
        )
    return "\n".join(out)


def goals(rows: Sequence[OpenRow], ledger: Ledger | None) -> list[str]:
    lines = []
    for method in METHODS:
        mine = [r for r in rows if r.method == method and r.shedding]
        if not mine:
            continue
        low = [r for r in mine if r.share <= GOAL_P99_UP_TO + 1e-9]
        if low:
            worst = max(low, key=lambda r: r.sample.ok_p99_ms)
            ok = all(r.sample.ok_p99_ms < GOAL_P99_MS for r in low)
            lines.append(
                f"- {method}, p99 < {GOAL_P99_MS:.0f} ms up to {GOAL_P99_UP_TO:.0%} of the "
                f"peak: worst {_ms(worst.sample.ok_p99_ms)} ms at {worst.share:.0%}: "
                f"{_verdict(ok)}."
            )
        top = max(mine, key=lambda r: r.share)
        share = top.goodput / top.peak
        lines.append(
            f"- {method} at {top.share:.0%} of the peak ({top.offered:,.0f}/s offered): "
            f"goodput {top.goodput:,.0f}/s = {share:.0%} of the peak (goal >= "
            f"{GOAL_GOODPUT:.0%}: {_verdict(share >= GOAL_GOODPUT)}); admitted p99 "
            f"{_ms(top.sample.ok_p99_ms)} ms (goal < {GOAL_ADMITTED_P99_MS:.0f}: "
            f"{_verdict(top.sample.ok_p99_ms < GOAL_ADMITTED_P99_MS)}); shed calls "
            f"answered in {_ms(top.sample.shed_p99_ms)} ms at p99 (goal < {GOAL_SHED_MS:.0f}: "
            f"{_verdict(top.sample.shed_p99_ms < GOAL_SHED_MS)})."
        )
    if ledger is not None:
        lines.append(
            f"- Acknowledged payments lost or duplicated: {ledger_line(ledger)} "
            f"{_verdict(ledger.holds)}."
        )
    return lines


def ledger_line(ledger: Ledger) -> str:
    return (
        f"of the sample's {ledger.acked:,} acknowledged payments {ledger.acked_found:,} are in "
        f"payments_db, {ledger.duplicates} twice; of its {ledger.shed:,} shed calls "
        f"{ledger.shed_written} left a row; {ledger.unknown:,} others failed (deadline, "
        f"cancelled: outcome unknown to the caller), {ledger.unknown_written:,} of them "
        f"committed. All load generators together: {ledger.acknowledged_total:,} OK answers, "
        f"{ledger.rows_added:,} rows added."
    )


def render(
    rows: Sequence[OpenRow],
    ledger: Ledger | None,
    *,
    started: str,
    workers: int,
    duration_s: float,
    warmup_s: float,
    plot: str | None,
    notes: Sequence[str] = (),
) -> str:
    peaks = ", ".join(
        f"{m} {next(r.peak for r in rows if r.method == m):,.0f}/s"
        for m in METHODS
        if any(r.method == m for r in rows)
    )
    intro = textwrap.fill(
        f"{started}. Offered load at fixed rates, whatever the answers, as a share of the "
        f"closed-loop peak measured in the same run (runtime section, WORKERS={workers}): "
        f"{peaks}. Each point: {warmup_s:g} s warm-up, {duration_s:g} s measured. h2load's "
        f"rate mode offers {1 - SAMPLE_SHARE:.0%} of the calls; the Python open-loop driver "
        f"offers the other {SAMPLE_SHARE:.0%} (at least {SAMPLE_MIN:.0f}/s) on its own "
        "schedule and times each call from its scheduled start by status: the admitted and "
        "shed percentiles are that sample's. Goodput and shed rates are the servers' own "
        "counts (grpc_server_handled_total) over the whole point, calls still queued when it "
        'ended included, per second of warm-up and window. "limit" is the adaptive '
        'concurrency limit at the end of the point, summed over the workers; "started" '
        'below "offered" means the load generators fell behind their schedule.',
        width=92,
        break_on_hyphens=False,
    )
    parts = [
        "## Open loop: latency and goodput against offered load",
        intro,
        "### Goals",
        "\n".join(goals(rows, ledger)),
    ]
    if plot:
        parts.append(f"![p50/p99 of admitted calls and goodput against offered load]({plot})")
    for method in METHODS:
        on = [r for r in rows if r.method == method and r.shedding]
        if on:
            parts += [f"### {method}", table(on)]
    off = [r for r in rows if not r.shedding]
    if off:
        parts += [
            "### The same top points with shedding off",
            textwrap.fill(
                "OVERLOAD_SHEDDING=false on the services (usersvc and paymentsvc) for the "
                "highest share, right after the rows above: what the limit changes.",
                width=92,
            ),
            table(off),
        ]
    if ledger is not None:
        parts += ["### Payments after the overload", textwrap.fill(ledger_line(ledger), 92)]
    if notes:
        parts += ["### Notes", "\n".join(f"- {n}" for n in notes)]
    return "\n\n".join(parts) + "\n"


def draw(rows: Sequence[OpenRow], path: Path) -> None:
    """p50/p99 of admitted calls (log scale) and goodput against offered load, per method."""
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="micro-mpl-"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(r.method == m and r.shedding for r in rows)]
    fig, axes = plt.subplots(1, len(methods), figsize=(6 * len(methods), 4.2), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        mine = sorted((r for r in rows if r.method == method and r.shedding), key=lambda r: r.share)
        x = [r.share * 100 for r in mine]
        ax.plot(x, [r.sample.ok_p50_ms for r in mine], "o-", label="admitted p50")
        ax.plot(x, [r.sample.ok_p99_ms for r in mine], "s-", label="admitted p99")
        ax.plot(x, [r.sample.shed_p99_ms for r in mine], "x:", label="shed p99")
        ax.set_yscale("log")
        ax.set_xlabel("offered load, % of the closed-loop peak")
        ax.set_ylabel("latency, ms")
        ax.set_title(f"{method} (peak {mine[0].peak:,.0f}/s)")
        ax.grid(True, which="both", alpha=0.3)
        right = ax.twinx()
        right.plot(
            x, [r.goodput / r.peak * 100 for r in mine], "^-", color="tab:green", label="goodput"
        )
        right.plot(x, x, "--", color="gray", linewidth=0.8, label="offered")
        right.set_ylabel("% of the closed-loop peak")
        right.set_ylim(0, max(x) * 1.05)
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
