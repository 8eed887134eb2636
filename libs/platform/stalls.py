"""Time a server process loses outside its handlers, as metrics: where a latency tail starts.

A call's latency is its handler's time plus the time nothing ran it. Three things stop an
asyncio server from running a ready call, and each shows in its own metric:

* `python_gc_pause_seconds{generation}`: the garbage collector stops every thread of the
  interpreter while it runs; a full collection of a big heap takes milliseconds.
* `event_loop_lag_seconds`: how late the loop ran a timer due at a known time. It covers the
  collector and any callback that held the loop (a slow decoder, a blocking call), and the
  time the process was not on a CPU at all.
* `process_cpu_wait_seconds_total{thread}` (Linux): how long the process's threads were ready
  to run but waited for a CPU (the scheduler's run-queue delay, /proc/self/task/*/schedstat):
  the share of the lag that is contention for the cores. With
  `process_thread_cpu_seconds_total{thread}` it also shows which of the process's own
  threads (the event loop, gRPC core's, the log writer) use and want the CPU.

None of these is in prometheus_client's default collectors (its GC collector counts
collections, not their length), nor in grpc or asyncio, hence this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# From a tenth of a millisecond (a young collection) to a second (a stalled process).
_STALL_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# Often enough to catch stalls of a few milliseconds in the histogram, rarely enough to cost
# nothing measurable (20 wake-ups a second).
DEFAULT_LAG_INTERVAL_S = 0.05
_TASKS = Path("/proc/self/task")


# Python names a thread's OS thread after its target ("Thread-3 (_poll_wrapper)", cut to 15
# bytes); the number differs between workers, the target does not.
_PYTHON_THREAD = re.compile(r"^Thread-\d+ \((.*)$")


def _thread_name(task: Path, main: str) -> str:
    if task.name == main:
        return "main"  # the event loop's; its OS name is the executable's
    comm = (task / "comm").read_text().strip()
    numbered = _PYTHON_THREAD.match(comm)
    return numbered.group(1) if numbered else comm


class _SchedulerCollector(Collector):
    """Reads the scheduler's per-thread counters at scrape time (Linux only), by thread name:
    the event loop, gRPC core's threads and the log writer each show apart."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            tasks = list(_TASKS.iterdir())
        except OSError:
            return  # not Linux, or no /proc: the metrics are absent rather than wrong
        main = str(os.getpid())
        ran: dict[str, int] = {}
        waited: dict[str, int] = {}
        for task in tasks:
            # schedstat: time on a CPU, time ready but waiting for one (both ns), timeslices.
            # A thread may end between the listing and the reads.
            with contextlib.suppress(OSError, ValueError, IndexError):
                name = _thread_name(task, main)
                fields = (task / "schedstat").read_text().split()
                ran[name] = ran.get(name, 0) + int(fields[0])
                waited[name] = waited.get(name, 0) + int(fields[1])
        running = CounterMetricFamily(
            "process_thread_cpu_seconds",
            "CPU time of this process's threads, by thread name",
            labels=["thread"],
        )
        waiting = CounterMetricFamily(
            "process_cpu_wait_seconds",
            "Time this process's threads were ready to run but waited for a CPU, by thread name",
            labels=["thread"],
        )
        for name in sorted(ran):
            running.add_metric([name], ran[name] / 1e9)
            waiting.add_metric([name], waited[name] / 1e9)
        yield running
        yield waiting


class StallMonitor:
    """Exports the three stall metrics into `registry` while started."""

    def __init__(
        self, registry: CollectorRegistry, *, lag_interval: float = DEFAULT_LAG_INTERVAL_S
    ) -> None:
        self.gc_pause = Histogram(
            "python_gc_pause_seconds",
            "Length of each garbage collection (every thread stops meanwhile), by generation",
            ["generation"],
            buckets=_STALL_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            f"How late the event loop ran a timer, sampled every {lag_interval:g} s",
            buckets=_STALL_BUCKETS,
            registry=registry,
        )
        if _TASKS.is_dir():
            registry.register(_SchedulerCollector())
        self._interval = lag_interval
        self._generations = [self.gc_pause.labels(str(g)) for g in range(3)]
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """From the event loop that serves the calls."""
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._sample_lag())

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # Runs inside the collector, so it must stay trivial: no allocation-heavy work.
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            generation = info.get("generation", 2)
            self._generations[min(max(generation, 0), 2)].observe(
                time.perf_counter() - self._gc_started
            )
            self._gc_started = 0.0

    async def _sample_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self.loop_lag.observe(max(0.0, loop.time() - due))
