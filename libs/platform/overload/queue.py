"""Shedding for the queue in front of the handlers, which AdaptiveLimit cannot see.

grpc.aio takes new calls from gRPC's core one per event-loop turn. When the process is short
of CPU, calls wait inside the core before any Python code runs; the handlers, which only
ever see the calls already taken, stay few and fast, so a limit on calls in flight never
binds while callers wait ever longer. The probe (probe.py) measures that wait: its
latency above its least latency over the last one to two `baseline_seconds`.

As in CoDel (RFC 8289), what counts is a standing queue, not a burst: the least wait over an
`interval_seconds`, so one probe delayed by a burst or by the scheduler changes nothing.
While that least wait is above `target_seconds`, a growing fraction of new calls is
refused at once (the idea of PIE's drop probability, RFC 8033): at the end of each interval
it moves towards `max_fraction` by a step that grows with how far the wait is over the
target, and decays by `decay` once the wait is back under it. A refused call costs the
process less than a served one, so the queue drains; it stays at most `max_fraction`, so
calls keep being served and measured. Refusals are spread evenly (a running credit, not a random draw),
which also keeps tests deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# How fast the fraction moves towards max_fraction: this share of the distance per interval
# for each multiple of the target the wait is over, at most MAX_STEP.
STEP_PER_TARGET = 0.05
MAX_STEP = 0.5
# Below this the fraction is zero: no call is refused for a queue that has drained.
MIN_FRACTION = 0.005


@dataclass(frozen=True)
class QueuePolicy:
    # A Python process at full load keeps a few ms of calls waiting as a matter of course
    # (32 calls in flight x ~0.3 ms each), and refusing a call costs it nearly as much as
    # serving a cheap one (BENCHMARKS.md); so only a standing queue of tens of ms sheds.
    target_seconds: float = 0.02
    interval_seconds: float = 0.2
    probe_interval_seconds: float = 0.04  # ~1% of a core for the probe's calls
    # Refusing more than half the calls buys little: each refusal costs nearly what a cheap
    # call costs, and a client that does not back off sends it again at once.
    max_fraction: float = 0.5
    # Off by default: measured at 2x a Python server's CPU capacity, a refusal costs about
    # what an empty call does and waits in the same queue in gRPC's core, so refusing up to
    # half the calls halved goodput without shortening latency (BENCHMARKS.md, open loop).
    # The wait is still measured and exported: a signal to scale out on.
    refuse: bool = False
    decay: float = 0.8
    baseline_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.max_fraction < 1:
            raise ValueError("max_fraction must be in (0, 1)")
        if not 0 < self.decay < 1:
            raise ValueError("decay must be in (0, 1)")


class QueueGate:
    def __init__(self, policy: QueuePolicy, now: float) -> None:
        self.policy = policy
        self.fraction = 0.0  # of new calls refused
        self.last_wait = 0.0  # the least wait of the last interval
        self._credit = 0.0
        self._interval_start = now
        self._interval_wait = math.inf
        self._epoch_start = now
        self._least = math.inf  # probe latency, this epoch
        self._least_before = math.inf  # and the one before

    def probe(self, latency: float, now: float) -> None:
        """A probe's round trip (probe.py)."""
        if now - self._epoch_start >= self.policy.baseline_seconds:
            self._least_before, self._least = self._least, math.inf
            self._epoch_start = now
        self._least = min(self._least, latency)
        wait = latency - min(self._least, self._least_before)
        self._interval_wait = min(self._interval_wait, wait)
        p = self.policy
        if now - self._interval_start < p.interval_seconds:
            return
        wait, self.last_wait = self._interval_wait, self._interval_wait
        self._interval_start, self._interval_wait = now, math.inf
        if wait > p.target_seconds:
            step = min(MAX_STEP, STEP_PER_TARGET * wait / p.target_seconds)
            self.fraction += (p.max_fraction - self.fraction) * step
        else:
            self.fraction *= p.decay
            if self.fraction < MIN_FRACTION:
                self.fraction = 0.0

    @property
    def standing(self) -> bool:
        """Whether calls waited before the handlers longer than the target throughout the
        last interval: the process is short of CPU."""
        return self.last_wait > self.policy.target_seconds

    def refuse_next(self) -> bool:
        """Whether to refuse the call arriving now."""
        if not self.fraction or not self.policy.refuse:
            return False
        self._credit += self.fraction
        if self._credit >= 1:
            self._credit -= 1
            return True
        return False
