"""The open-loop section of BENCHMARKS.md and its plot (tools/bench/overload.py measures)."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from tools.bench.overload import (
    PROTECTED,
    SAMPLE_MIN,
    SAMPLE_SHARE,
    UNPROTECTED,
    UNPROTECTED_SETTINGS,
    Ledger,
    OpenRow,
)
from tools.bench.sections import error_cell

# Issue 22's goals, ratios within one run; goodput counts OK answers within the deadline.
GOAL_P99_MS = {"GetUser": 20.0, "CreatePayment": 50.0}  # admitted p99, up to GOAL_UP_TO
GOAL_UP_TO = 0.8  # of the peak
GOAL_GOOD_OF_OFFERED = 0.99  # up to GOAL_UP_TO
GOAL_GOODPUT = 0.9  # of the peak, at the top share, and never below the unprotected arm
METHODS = ("GetUser", "CreatePayment")
UNPROTECTED_TEXT = ", ".join(f"{k}={v}" for k, v in UNPROTECTED_SETTINGS.items())
ARM_NOTES = {PROTECTED: " (the defaults)", UNPROTECTED: f" ({UNPROTECTED_TEXT})"}


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
            "| offered (of peak) | offered/s | started/s | OK within deadline/s (of offered, of "
            "peak) | OK/s (servers) | shed/s (limit, queue) | admitted p50 ms | admitted p99 ms "
            "| shed p50 ms | shed p99 ms | every answer p99 ms (h2load) | other errors (servers) "
            "| other errors (clients; refused streams are UNAVAILABLE) | limit | sample calls |"
        ),
        "|" + " ---: |" * 11 + " --- | --- | ---: | ---: |",
    ]
    for r in rows:
        s = r.sample
        errors = error_cell(r.errors)
        good = r.good_in_deadline
        out.append(
            f"| {r.share:.0%} | {r.offered:,.0f} | {r.started:,.0f} | {good:,.0f} "
            f"({good / r.offered:.0%}, {good / r.peak:.0%}) | {r.goodput:,.0f} "
            f"| {r.shed:,.0f} ({_share(r, 'limit')}, {_share(r, 'queue')}) "
            f"| {_ms(s.ok_p50_ms)} | {_ms(s.ok_p99_ms)} | {_ms(s.shed_p50_ms)} "
            f"| {_ms(s.shed_p99_ms)} | {_ms(r.all_p99_ms)} | {errors} | {error_cell(s.errors)} "
            f"| {r.limit:.0f} "
            f"| {s.sent:,} |"
        )
    return "\n".join(out)


def _top(cores: dict[str, float], n: int = 3) -> str:
    biggest = sorted(cores.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{name} {value:.2f}" for name, value in biggest if value >= 0.005) or "-"


def stall_table(rows: Sequence[OpenRow]) -> str:
    """Next to each point's admitted p99: what the servers lost outside their handlers."""
    out = [
        (
            "| offered (of peak) | method | arm | admitted p99 ms | loop lag p99 ms (bucket) "
            "| GC ms/s (longest, bucket) | waiting for a CPU (cores) | most waiting threads "
            "(cores) | driver CPU (cores) |"
        ),
        "| ---: | --- | --- |" + " ---: |" * 4 + " --- | ---: |",
    ]
    for r in rows:
        st = r.stalls
        if st is None:
            continue
        out.append(
            f"| {r.share:.0%} | {r.method} | {r.arm} | {_ms(r.sample.ok_p99_ms)} "
            f"| {_ms(st.lag_p99_ms)} | {_ms(st.gc_ms_per_s)} (≤{_ms(st.gc_longest_ms)}) "
            f"| {st.cpu_wait_cores:.2f} | {_top(st.thread_wait)} | {r.sample.client_cpu:.2f} |"
        )
    return "\n".join(out)


def _of(rows: Sequence[OpenRow], method: str, arm: str) -> list[OpenRow]:
    """The rows of one method in one arm, by share."""
    return sorted((r for r in rows if r.method == method and r.arm == arm), key=lambda r: r.share)


def _arms(rows: Sequence[OpenRow], method: str) -> list[tuple[OpenRow, OpenRow | None]]:
    """(protected, unprotected at the same share or None), by share."""
    off = {r.share: r for r in _of(rows, method, UNPROTECTED)}
    return [(r, off.get(r.share)) for r in _of(rows, method, PROTECTED)]


def arm_names(rows: Sequence[OpenRow]) -> list[str]:
    """The arms in the order they ran, the protected one first."""
    names = [PROTECTED]
    for r in rows:
        if r.arm not in names:
            names.append(r.arm)
    return names


def comparison(rows: Sequence[OpenRow]) -> str:
    """Every arm side by side: OK within deadline as a share of the peak, admitted p99."""
    arms = arm_names(rows)
    out = [
        "| offered (of peak) | method | "
        + " | ".join(f"OK within deadline, {a}" for a in arms)
        + " | "
        + " | ".join(f"admitted p99 ms, {a}" for a in arms)
        + " |",
        "| ---: | --- |" + " ---: |" * (2 * len(arms)),
    ]
    for method in METHODS:
        by = {(r.arm, r.share): r for r in rows if r.method == method}
        for share in [r.share for r in _of(rows, method, PROTECTED)]:
            got = [by.get((a, share)) for a in arms]
            good = [f"{r.good_in_deadline / r.peak:.0%}" if r else "-" for r in got]
            p99 = [_ms(r.sample.ok_p99_ms) if r else "-" for r in got]
            out.append(f"| {share:.0%} | {method} | " + " | ".join(good + p99) + " |")
    return "\n".join(out)


def goals(rows: Sequence[OpenRow], ledger: Ledger | None) -> list[str]:
    lines = []
    for method in METHODS:
        arms = _arms(rows, method)
        if not arms:
            continue
        low = [on for on, _ in arms if on.share <= GOAL_UP_TO + 1e-9]
        if low:
            worst_good = min(low, key=lambda r: r.good_in_deadline / r.offered)
            worst_p99 = max(low, key=lambda r: r.sample.ok_p99_ms)
            good_ok = all(r.good_in_deadline >= GOAL_GOOD_OF_OFFERED * r.offered for r in low)
            p99_ok = all(r.sample.ok_p99_ms < GOAL_P99_MS[method] for r in low)
            lines.append(
                f"- {method} up to {GOAL_UP_TO:.0%} of the peak: OK within the deadline >= "
                f"{GOAL_GOOD_OF_OFFERED:.0%} of offered: worst "
                f"{worst_good.good_in_deadline / worst_good.offered:.1%} at "
                f"{worst_good.share:.0%}: {_verdict(good_ok)}; admitted p99 < "
                f"{GOAL_P99_MS[method]:.0f} ms: worst {_ms(worst_p99.sample.ok_p99_ms)} ms at "
                f"{worst_p99.share:.0%}: {_verdict(p99_ok)}."
            )
        top = arms[-1][0]
        share = top.good_in_deadline / top.peak
        line = (
            f"- {method} at {top.share:.0%} of the peak ({top.offered:,.0f}/s offered): OK "
            f"within the deadline {top.good_in_deadline:,.0f}/s = {share:.0%} of the peak "
            f"(goal >= {GOAL_GOODPUT:.0%}: {_verdict(share >= GOAL_GOODPUT)})"
        )
        paired = [(on, off) for on, off in arms if off is not None]
        if paired:
            below = [on.share for on, off in paired if on.good_in_deadline < off.good_in_deadline]
            shares = ", ".join(f"{x:.0%}" for x in below) or "none"
            line += f"; below the unprotected arm at: {shares} ({_verdict(not below)})"
        lines.append(line + ".")
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
    sample_share: float = SAMPLE_SHARE,
    native_driver: bool = False,
) -> str:
    deadline = rows[0].deadline_s if rows else float("nan")
    if native_driver:
        drivers = (
            "The C++ open-loop driver (clients/cpp/openloop, `--open-loop-driver`) offers "
            "every call on its own schedule over 8 connections and times each from its "
            "scheduled start, by status; a call's deadline starts then too, so a call the "
            "client queues (under a per-connection stream bound) spends its own deadline "
            "waiting, as a user's would. Its CPU per call is a small fraction of a Python "
            "client's, so the servers keep most of the two cores, as they did at the "
            'closed-loop peak (h2load, C). "OK within deadline" (the goodput the goals count) '
            "is its calls answered OK within the deadline, per second."
        )
    elif sample_share >= 1:
        drivers = (
            "The Python open-loop driver offers every call on its own schedule and times each "
            "from its scheduled start, by status; a call's deadline starts then too, so a call "
            "a client queues (under a per-connection stream bound) spends its own deadline "
            "waiting, as a user's would. The driver shares the machine's two cores with the "
            "servers, so every arm serves less than the closed-loop peak, where h2load (C) "
            'drove the load. "OK within deadline" (the goodput the goals count) is its calls '
            "answered OK within the deadline, per second."
        )
    else:
        drivers = (
            f"h2load's rate mode offers {1 - sample_share:.0%} of the calls; the Python "
            f"open-loop driver offers the other {sample_share:.0%} (at least {SAMPLE_MIN:.0f}/s) "
            "on its own schedule and times each call from its scheduled start by status: the "
            "admitted and shed percentiles are that sample's, and so is the share of calls "
            'answered OK within the deadline, which times the calls started gives "OK within '
            "deadline\" (the goodput the goals count), capped at the servers' OK answers: "
            "h2load's calls may fare worse than the sample's, and h2load's deadline starts "
            "only when a call leaves its queue."
        )
    peaks = ", ".join(
        f"{m} {next(r.peak for r in rows if r.method == m):,.0f}/s"
        for m in METHODS
        if any(r.method == m for r in rows)
    )
    intro = textwrap.fill(
        f"{started}. Offered load at fixed rates, whatever the answers, as a share of the "
        f"closed-loop peak measured in the same run (runtime section, WORKERS={workers}): "
        f"{peaks}. Each point: {warmup_s:g} s warm-up, {duration_s:g} s measured. Every call "
        f"carries a {deadline:g} s deadline (gRPC's grpc-timeout), as a user's client would; "
        "the server drops a call once it has passed, and the client counts it failed. "
        f"{drivers} "
        '"OK/s (servers)" and the shed rates are the servers\' own '
        'counts (grpc_server_handled_total) over the whole point. "limit" is the adaptive '
        'concurrency limit at the end of the point, summed over the workers; "started" '
        'below "offered" means the load generators fell behind their schedule. Every share '
        'runs in every arm, one after the other: "protected" is the services\' defaults, '
        f"then unprotected ({UNPROTECTED_TEXT} on the services involved), then any other "
        "arm named below with its settings (since the sixth round the defaults turn on "
        "neither the adaptive limit nor the stream bound, so the first two arms differ "
        "only by run-to-run noise).",
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
    arms = arm_names(rows)
    if len(arms) > 1:
        parts += ["### Every arm, share of the peak", comparison(rows)]
    if any(r.stalls is not None for r in rows):
        parts += [
            "### Where the tail comes from",
            textwrap.fill(
                "The servers' own stall metrics (libs/platform/stalls.py) over each point, "
                "summed over the workers of the server the load goes to: how late the event "
                "loop ran a timer due every 50 ms (a held loop, a collection, or no CPU), the "
                "garbage collector's time, and the time its threads were ready to run but "
                "waited for a CPU that other processes held (PostgreSQL, the other workers, "
                "the load driver), with the threads that waited most: `main` runs the event "
                "loop, `event_engine` is gRPC core's I/O threads, `_poll` grpc.aio's "
                "completion-queue poller, `_moni` the log writer. The driver's own CPU is the "
                "last column.",
                92,
            ),
            stall_table(rows),
        ]
    for method in METHODS:
        for arm in arms:
            mine = _of(rows, method, arm)
            if mine:
                parts += [f"### {method}, {arm}{ARM_NOTES.get(arm, '')}", table(mine)]
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

    methods = [m for m in METHODS if _of(rows, m, PROTECTED)]
    fig, axes = plt.subplots(1, len(methods), figsize=(6 * len(methods), 4.2), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        mine = _of(rows, method, PROTECTED)
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
            x,
            [r.good_in_deadline / r.peak * 100 for r in mine],
            "^-",
            color="tab:green",
            label="OK within deadline",
        )
        styles = iter([("v--", "tab:red"), ("d-.", "tab:purple"), ("p:", "tab:brown")])
        for arm in arm_names(rows)[1:]:
            other = _of(rows, method, arm)
            marker, color = next(styles, ("+:", "black"))
            if other:
                right.plot(
                    [r.share * 100 for r in other],
                    [r.good_in_deadline / r.peak * 100 for r in other],
                    marker,
                    color=color,
                    label=f"same, {arm}",
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
