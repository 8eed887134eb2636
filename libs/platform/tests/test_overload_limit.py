"""The adaptive limit, the queue gate and the retry budget, driven by made-up clocks and
latencies (no timing in these tests: every instant is an argument)."""

from __future__ import annotations

import dataclasses

import pytest

from libs.platform.overload.limit import AdaptiveLimit, LimitPolicy
from libs.platform.overload.queue import QueueGate, QueuePolicy
from libs.platform.overload.retries import RetryBudget, RetryPolicy

METHOD = "/user.v1.UserService/GetUser"
POLICY = LimitPolicy(
    initial=20,
    min_limit=4,
    max_limit=200,
    tolerance=4.0,
    allowance_seconds=0.001,  # so the tolerance decides in these tests (but the last)
    window_seconds=0.1,
    window_min_samples=10,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def run_window(limit: AdaptiveLimit, clock: Clock, latency: float, busy: int) -> None:
    """One window: `busy` calls in flight at once, each taking `latency`, then done."""
    for _ in range(2):
        admitted = sum(limit.try_acquire() for _ in range(busy))
        clock.tick(0.06)
        for _ in range(admitted):
            limit.release(METHOD, latency, clock.now)


def settle(limit: AdaptiveLimit, clock: Clock, latency: float, windows: int = 40) -> None:
    for _ in range(windows):
        run_window(limit, clock, latency, limit.limit)


def test_over_the_limit_is_refused_and_a_release_makes_room() -> None:
    limit = AdaptiveLimit(POLICY, 0.0)
    assert all(limit.try_acquire() for _ in range(20))
    assert not limit.has_room()
    assert not limit.try_acquire()
    assert limit.in_flight == 20
    limit.release(METHOD, None, 0.01)
    assert limit.try_acquire()


def test_limit_grows_while_latency_stays_at_its_minimum() -> None:
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    run_window(limit, clock, 0.001, 20)  # the baseline: 1 ms
    grown = [limit.limit]
    for _ in range(10):
        run_window(limit, clock, 0.001, limit.limit)
        grown.append(limit.limit)
    assert grown == sorted(grown)
    assert grown[-1] > 2 * grown[0]


def test_limit_shrinks_when_latency_rises_and_recovers_when_it_falls() -> None:
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    settle(limit, clock, 0.001, windows=10)
    high = limit.limit
    # Calls now take 20x their minimum (a slow database, say): far over the tolerance (4x).
    settle(limit, clock, 0.020, windows=150)
    assert limit.limit == POLICY.min_limit
    assert limit.last_slowdown == pytest.approx(20.0 / 4)  # 20 ms against 4 x 1 ms
    settle(limit, clock, 0.001, windows=40)
    assert limit.limit >= high


def test_limit_settles_where_latency_is_near_the_tolerance() -> None:
    # A server whose latency grows with the calls in flight: 1 ms each, queued one behind
    # another, so with n in flight the median call takes about n / 2 ms.
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    run_window(limit, clock, 0.001, 1)  # the minimum: one call alone takes 1 ms
    for _ in range(200):
        run_window(limit, clock, 0.001 * max(1, limit.limit / 2), limit.limit)
    # tolerance 4 -> median latency ~4x the minimum -> ~8 in flight, plus the sqrt headroom.
    assert 6 <= limit.limit <= 14


def test_queueing_within_the_allowance_does_not_shrink_the_limit() -> None:
    # 0.5 ms calls taking 15 ms: 30x their minimum, but within 0.5 ms + 20 ms.
    policy = dataclasses.replace(POLICY, allowance_seconds=0.02)
    clock = Clock()
    limit = AdaptiveLimit(policy, clock.now)
    run_window(limit, clock, 0.0005, 1)
    settle(limit, clock, 0.015)
    assert limit.limit > POLICY.initial
    settle(limit, clock, 0.100, windows=150)  # 100 ms is over the allowance: it shrinks
    assert limit.limit == POLICY.min_limit


def test_limit_holds_while_the_process_is_short_of_cpu_and_shrinks_after() -> None:
    # Slow calls while new calls wait before the handlers: the CPU's doing, not a
    # dependency's, and fewer calls in flight would not give the time back.
    clock = Clock()
    short = True
    limit = AdaptiveLimit(POLICY, clock.now, cpu_short=lambda: short)
    settle(limit, clock, 0.001, windows=10)
    high = limit.limit
    settle(limit, clock, 0.020, windows=50)
    assert limit.limit >= high
    assert limit.held > 0
    # The same slowdown with the CPU to spare (a slow database): the limit follows it down.
    short = False
    settle(limit, clock, 0.020, windows=150)
    assert limit.limit == POLICY.min_limit


def test_an_idle_server_does_not_grow_its_limit() -> None:
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    for _ in range(20):
        run_window(limit, clock, 0.001, 2)  # 2 in flight: never near the limit of 20
    assert limit.limit == 20


def test_each_method_is_measured_against_its_own_minimum() -> None:
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    # A fast method and a slow one (a password check), both at their own minimum.
    for _ in range(40):
        for method, latency in ((METHOD, 0.001), ("/user.v1.UserService/Verify", 0.05)):
            for _ in range(6):
                assert limit.try_acquire()
            clock.tick(0.03)
            for _ in range(6):
                limit.release(method, latency, clock.now)
    assert limit.last_slowdown == pytest.approx(1 / 4)  # at the minimum: a quarter allowed
    assert limit.limit == 20  # never shrunk (and 6 in flight is too few to grow)


def test_failed_and_cancelled_calls_tell_nothing() -> None:
    clock = Clock()
    limit = AdaptiveLimit(POLICY, clock.now)
    settle(limit, clock, 0.001, windows=5)
    before = limit.limit
    for _ in range(100):
        assert limit.try_acquire()
        limit.release(METHOD, None, clock.tick(0.01))
    assert limit.limit == before
    assert limit.in_flight == 0


def test_baseline_forgets_a_minimum_older_than_two_epochs() -> None:
    clock = Clock()
    policy = LimitPolicy(baseline_seconds=10.0, window_min_samples=1)
    limit = AdaptiveLimit(policy, clock.now)
    limit.try_acquire()
    limit.release(METHOD, 0.001, clock.now)
    for _ in range(25):  # 25 s at 3 ms: the 1 ms minimum ages out after two epochs
        limit.try_acquire()
        limit.release(METHOD, 0.003, clock.tick(1.0))
    assert limit.baseline(METHOD) == pytest.approx(0.003)


def test_policy_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="min_limit"):
        LimitPolicy(initial=2, min_limit=4)
    with pytest.raises(ValueError, match="tolerance"):
        LimitPolicy(tolerance=1.0)


QUEUE = QueuePolicy(
    target_seconds=0.005, interval_seconds=0.1, max_fraction=0.9, decay=0.9, refuse=True
)


def probes(gate: QueueGate, clock: Clock, latency: float, seconds: float) -> None:
    for _ in range(round(seconds / 0.02)):
        gate.probe(latency, clock.tick(0.02))


def refused(gate: QueueGate, calls: int) -> int:
    return sum(gate.refuse_next() for _ in range(calls))


def test_queue_gate_refuses_a_growing_share_while_calls_wait_and_stops_after() -> None:
    clock = Clock()
    gate = QueueGate(QUEUE, clock.now)
    probes(gate, clock, 0.0005, 1.0)  # the probe's own round trip: 0.5 ms
    assert gate.fraction == 0 and refused(gate, 1000) == 0
    probes(gate, clock, 0.0505, 0.2)  # 50 ms standing wait: 10x the target
    first = gate.fraction
    assert first > 0
    probes(gate, clock, 0.0505, 1.0)
    assert first < gate.fraction <= 0.9
    assert refused(gate, 1000) == pytest.approx(1000 * gate.fraction, abs=1)
    assert gate.last_wait == pytest.approx(0.05)
    probes(gate, clock, 0.0005, 10.0)
    assert gate.fraction == 0
    assert refused(gate, 1000) == 0


def test_queue_gate_says_whether_a_queue_stands_before_the_handlers() -> None:
    clock = Clock()
    gate = QueueGate(QUEUE, clock.now)
    probes(gate, clock, 0.0005, 1.0)
    assert not gate.standing
    probes(gate, clock, 0.0205, 0.4)  # 20 ms throughout, over the 5 ms target
    assert gate.standing
    probes(gate, clock, 0.0005, 0.4)
    assert not gate.standing


def test_queue_gate_that_may_not_refuse_only_measures() -> None:
    clock = Clock()
    gate = QueueGate(dataclasses.replace(QUEUE, refuse=False), clock.now)
    probes(gate, clock, 0.0005, 1.0)
    probes(gate, clock, 0.0505, 1.0)
    assert gate.fraction > 0 and gate.last_wait == pytest.approx(0.05)
    assert refused(gate, 1000) == 0


def test_queue_gate_only_measures_by_default() -> None:
    assert QueuePolicy().refuse is False


def test_queue_gate_ignores_a_burst_shorter_than_its_interval() -> None:
    clock = Clock()
    gate = QueueGate(QUEUE, clock.now)
    probes(gate, clock, 0.0005, 1.0)
    for _ in range(20):
        # One slow probe in each interval (a burst, a scheduler hiccup): no standing queue.
        gate.probe(0.2, clock.tick(0.02))
        probes(gate, clock, 0.0005, 0.1)
    assert gate.fraction == 0


def test_retry_budget_allows_a_share_of_calls_in_its_window() -> None:
    policy = RetryPolicy(ratio=0.1, min_per_second=0.0, window_seconds=10.0)
    clock = Clock()
    budget = RetryBudget(policy, clock.now)
    for _ in range(100):
        budget.record_call(clock.tick(0.01))
    assert sum(budget.try_spend(clock.now) for _ in range(50)) == 10
    # The window slides: 10 s later those calls no longer count.
    clock.tick(10.5)
    assert not budget.try_spend(clock.now)
    for _ in range(30):
        budget.record_call(clock.tick(0.01))
    assert sum(budget.try_spend(clock.now) for _ in range(50)) == 3


def test_retry_budget_keeps_a_small_allowance_for_quiet_callers() -> None:
    policy = RetryPolicy(ratio=0.1, min_per_second=0.5, window_seconds=10.0)
    clock = Clock()
    budget = RetryBudget(policy, clock.now)
    budget.record_call(clock.now)
    assert sum(budget.try_spend(clock.now) for _ in range(20)) == 5  # 0.5/s over 10 s
