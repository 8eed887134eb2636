"""The servers' stall metrics (libs/platform/stalls.py) over one bench point, summed over
workers: how much of a latency tail is the collector, a held event loop, or waiting for a
CPU that other processes on the same cores hold."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tools.bench import h2load

LAG = "event_loop_lag_seconds"
GC = "python_gc_pause_seconds"
CPU_WAIT = "process_cpu_wait_seconds_total"
THREAD_CPU = "process_thread_cpu_seconds_total"


@dataclass(frozen=True)
class Snapshot:
    lag_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    gc_buckets: dict[float, float] = field(default_factory=dict)
    gc_seconds: float = 0.0
    cpu_wait_seconds: float = 0.0
    thread_cpu: dict[str, float] = field(default_factory=dict)  # thread name -> CPU seconds
    thread_wait: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stalls:
    """One point's stalls; NaN where the servers export no such metric."""

    lag_p99_ms: float  # upper bound of the bucket holding the 99th percentile
    gc_ms_per_s: float  # collector time per second of the point, all workers
    gc_longest_ms: float  # upper bound of the highest bucket any collection fell in
    cpu_wait_cores: float  # run-queue wait per second: cores' worth of ready threads waiting
    thread_cpu: dict[str, float] = field(default_factory=dict)  # cores, by thread name
    thread_wait: dict[str, float] = field(default_factory=dict)  # cores waiting, by name


def scrape(urls: Sequence[str]) -> Snapshot:
    lag: defaultdict[float, float] = defaultdict(float)
    gc: defaultdict[float, float] = defaultdict(float)
    gc_seconds = cpu_wait = 0.0
    thread_cpu: defaultdict[str, float] = defaultdict(float)
    thread_wait: defaultdict[str, float] = defaultdict(float)
    for s in h2load.samples(urls):
        if s.name == f"{LAG}_bucket":
            lag[float(s.labels["le"])] += s.value
        elif s.name == f"{GC}_bucket":
            gc[float(s.labels["le"])] += s.value
        elif s.name == f"{GC}_sum":
            gc_seconds += s.value
        elif s.name == CPU_WAIT:
            cpu_wait += s.value
            thread_wait[s.labels.get("thread", "")] += s.value
        elif s.name == THREAD_CPU:
            thread_cpu[s.labels.get("thread", "")] += s.value
    return Snapshot(lag, gc, gc_seconds, cpu_wait, thread_cpu, thread_wait)


def _minus(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: n - before.get(le, 0.0) for le, n in after.items() if n > before.get(le, 0.0)}


def _quantile_bound(buckets: dict[float, float], q: float) -> float:
    """The upper bound of the bucket the q-quantile falls in (cumulative buckets)."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return math.nan
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return math.inf


def _highest(buckets: dict[float, float]) -> float:
    """The upper bound of the highest bucket with any observation in it (NaN: none)."""
    highest, below = math.nan, 0.0
    for le in sorted(buckets):
        if buckets[le] > below:
            highest, below = le, buckets[le]
    return highest


def between(before: Snapshot, after: Snapshot, seconds: float) -> Stalls:
    lag = _minus(after.lag_buckets, before.lag_buckets)
    gc = _minus(after.gc_buckets, before.gc_buckets)
    seen = bool(after.lag_buckets)

    def cores(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {name: round((a[name] - b.get(name, 0.0)) / seconds, 3) for name in sorted(a)}

    return Stalls(
        lag_p99_ms=_quantile_bound(lag, 0.99) * 1000,
        gc_ms_per_s=(after.gc_seconds - before.gc_seconds) * 1000 / seconds if seen else math.nan,
        gc_longest_ms=(_highest(gc) * 1000 if gc else 0.0) if seen else math.nan,
        cpu_wait_cores=(
            (after.cpu_wait_seconds - before.cpu_wait_seconds) / seconds if seen else math.nan
        ),
        thread_cpu=cores(after.thread_cpu, before.thread_cpu),
        thread_wait=cores(after.thread_wait, before.thread_wait),
    )
