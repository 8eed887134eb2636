"""An adaptive limit on calls in flight in one process, driven by measured latency.

The idea is the gradient controller of Envoy's adaptive concurrency filter and of Netflix's
concurrency-limits (Gradient2, Vegas): compare the latency calls see now (the sampled RTT)
with the latency they see when nothing queues (the minimum RTT); while calls are barely
slower than that minimum there is spare capacity and the limit grows, and when they slow
down the extra time is queueing, so the limit shrinks in proportion.

Written here rather than taken from a library: no maintained Python package does this for a
server (the ones on PyPI limit a client's calls to a slow API, or are AIMD semaphores with
no latency signal), and the published algorithms need adapting to this stack in four ways:

* **Per-method baseline.** One process serves methods whose unloaded latencies differ by
  100x (GetUser ~0.5 ms, a password check ~50 ms). Each sample is divided by its own
  method's minimum, so the signal is "how much slower than usual", whatever the mix.
* **A tolerance, not a 25% buffer.** In Envoy the limit settles where latency is ~1.25x the
  minimum. A Python server spends its time on the event loop, so latency rises with every
  call in flight even before throughput peaks; batching (libs/platform/batching.py) even
  needs calls in flight to share queries. The limit therefore settles where the median call
  is `tolerance` times slower than its minimum (the default is measured in BENCHMARKS.md).
* **An absolute allowance.** A 0.5 ms call that takes 8 ms with 30 others in flight is 16x
  slower, yet nobody is harmed. Latency up to its minimum plus `allowance_seconds` of
  queueing (the same wait the queue gate allows, OVERLOAD_QUEUE_TARGET_SECONDS) counts as
  unqueued too, so the limit binds only where waiting costs callers real time. Refusing
  early is not free here: a refused call costs the process nearly as much as serving a
  cheap one, and a client that does not back off just sends it again.
* **No probing pauses.** Envoy re-measures the minimum by pinning concurrency low for a
  while, shedding most calls meanwhile; here the minimum is the least latency seen over the
  last one to two `baseline_seconds` (two epochs), which a few unqueued calls among
  thousands keep honest, and which forgets a baseline that moved (a slower database).

The update, once per window of at least `window_min_samples` successful calls:

    allowed  = max(tolerance * baseline[method], baseline[method] + allowance)
    slowdown = median(latency / allowed)
    gradient = clamp(1 / slowdown, 0.5, 2)
    target   = limit * gradient + sqrt(limit)      # sqrt: headroom to probe upwards
    limit    = limit + smoothing * (target - limit), within [min_limit, max_limit]

and the limit does not grow in a window where calls in flight never reached half of it (an
idle server has shown nothing about higher concurrency). Everything takes the time as an
argument, so tests drive it with made-up clocks and latencies.

This limit sees only calls that reached a handler. When the process itself is short of CPU
the queue forms earlier, inside gRPC's core; queue.py watches that one. It is also what
tells the two causes of slow calls apart: handler latency rises both when a dependency
slows down and when the process runs out of CPU, but only the second makes new calls wait
before any handler runs. While that wait stands (`cpu_short`), the limit does not shrink:
fewer calls in flight cannot give a CPU-bound process its time back, and every refusal
costs it most of what serving a cheap call does (README.md, the measured costs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

# Envoy's and Netflix's bounds on one step: halve at most, double at most.
MIN_GRADIENT = 0.5
MAX_GRADIENT = 2.0
# Samples kept per window; beyond this the median is already exact enough.
MAX_WINDOW_SAMPLES = 2000
# Latencies below this are clock noise, not a baseline to divide by.
MIN_BASELINE_S = 1e-5


@dataclass(frozen=True)
class LimitPolicy:
    """Tuning of AdaptiveLimit; OverloadSettings (settings.py) reads it from the environment."""

    initial: int = 64
    # The floor is the start: under CPU saturation latency rises whatever the limit does,
    # and a limit that follows it down starves the batching (libs/platform/batching.py)
    # that makes the services cheap per call. At 8, CreatePayment's limit sank to its floor
    # and its goodput to 19-43% of the peak from 60% offered load on; at 64 it held 1.3-1.6x
    # more at 100% and 200% (BENCHMARKS.md, third round). A slow dependency still meets a
    # bound: 64 calls in flight per process, refused beyond.
    min_limit: int = 64
    max_limit: int = 1000
    tolerance: float = 8.0
    allowance_seconds: float = 0.02
    window_seconds: float = 0.1
    window_min_samples: int = 20
    smoothing: float = 0.2
    baseline_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial <= self.max_limit:
            raise ValueError("need 1 <= min_limit <= initial <= max_limit")
        if self.tolerance <= 1:
            raise ValueError("tolerance must be above 1 (latency equal to the minimum)")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")


def _never() -> bool:
    return False


class AdaptiveLimit:
    def __init__(
        self, policy: LimitPolicy, now: float, cpu_short: Callable[[], bool] = _never
    ) -> None:
        """`cpu_short` tells whether calls now wait before the handlers (queue.py's
        standing wait): the latency the limit sees then is the CPU's, not a dependency's."""
        self.policy = policy
        self._cpu_short = cpu_short
        self._limit = float(policy.initial)
        self.in_flight = 0
        self._window_start = now
        self._window_peak = 0  # most calls in flight during the window
        self._samples: list[float] = []
        # The minimum latency per method in this epoch and in the one before.
        self._epoch_start = now
        self._baseline: dict[str, float] = {}
        self._previous: dict[str, float] = {}
        # The last window's median latency over what is allowed: above 1 the limit shrinks.
        self.last_slowdown: float | None = None
        self.held = 0  # windows in which the limit would have shrunk but the CPU was short

    @property
    def limit(self) -> int:
        return int(self._limit)

    def has_room(self, overflow: int = 0) -> bool:
        return self.in_flight < int(self._limit) + overflow

    def try_acquire(self, overflow: int = 0) -> bool:
        """Take a place for a call, or False when calls in flight are at the limit (plus
        `overflow` places beyond it, for the callers shedding.py lets past the largest)."""
        if not self.has_room(overflow):
            return False
        self.in_flight += 1
        self._window_peak = max(self._window_peak, self.in_flight)
        return True

    def release(self, method: str, latency: float | None, now: float) -> None:
        """A call admitted by try_acquire ended; `latency` is None when it tells nothing
        about load (it failed, or the caller cancelled it)."""
        self.in_flight -= 1
        if latency is not None:
            self._sample(method, latency, now)

    def baseline(self, method: str) -> float | None:
        """The least latency `method` had over the last one to two epochs."""
        current = self._baseline.get(method, math.inf)
        best = min(current, self._previous.get(method, math.inf))
        return None if best == math.inf else best

    def _sample(self, method: str, latency: float, now: float) -> None:
        if now - self._epoch_start >= self.policy.baseline_seconds:
            self._previous, self._baseline = self._baseline, {}
            self._epoch_start = now
        latency = max(latency, MIN_BASELINE_S)
        if latency < self._baseline.get(method, math.inf):
            self._baseline[method] = latency
        base = self.baseline(method)
        assert base is not None
        if len(self._samples) < MAX_WINDOW_SAMPLES:
            p = self.policy
            self._samples.append(latency / max(p.tolerance * base, base + p.allowance_seconds))
        if (
            now - self._window_start >= self.policy.window_seconds
            and len(self._samples) >= self.policy.window_min_samples
        ):
            self._update(now)

    def _update(self, now: float) -> None:
        p = self.policy
        slowdown = statistics.median(self._samples)
        gradient = min(MAX_GRADIENT, max(MIN_GRADIENT, 1 / slowdown))
        if gradient < 1 and self._cpu_short():
            gradient = 1.0
            self.held += 1
        target = self._limit * gradient + math.sqrt(self._limit)
        if target > self._limit and self._window_peak < self._limit / 2:
            target = self._limit
        limit = self._limit + p.smoothing * (target - self._limit)
        self._limit = min(float(p.max_limit), max(float(p.min_limit), limit))
        self.last_slowdown = slowdown
        self._samples = []
        self._window_start = now
        self._window_peak = self.in_flight
