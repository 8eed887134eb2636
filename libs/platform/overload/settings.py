"""OVERLOAD_* and RETRY_BUDGET_* settings, shared by every service (README.md here)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c
from libs.platform.builtin_limits import BuiltinLimits
from libs.platform.overload.core import EXCESS_STREAMS, REFUSE, CoreLimits
from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.queue import QueuePolicy
from libs.platform.overload.retries import RetryPolicy

_LIMIT = LimitPolicy()
_QUEUE = QueuePolicy()
_RETRY = RetryPolicy()


@dataclass(frozen=True, kw_only=True)
class OverloadSettings:
    # Off by default: in four open-loop runs at and above the peak the adaptive limit gave
    # less goodput within the deadline than no protection in the same run as often as more
    # (BENCHMARKS.md, sixth round). Turn it on where a dependency that slows down (not the
    # CPU) is the danger; it brings the queue probe and its metrics with it.
    overload_shedding: bool = c.setting(False)
    overload_initial_limit: int = c.setting(_LIMIT.initial, min=1, max=100_000)
    overload_min_limit: int = c.setting(_LIMIT.min_limit, min=1, max=100_000)
    overload_max_limit: int = c.setting(_LIMIT.max_limit, min=1, max=100_000)
    overload_latency_tolerance: float = c.setting(_LIMIT.tolerance, min=1.1, max=1000.0)
    overload_window_seconds: float = c.setting(_LIMIT.window_seconds, min=0.001, max=60.0)
    overload_baseline_seconds: float = c.setting(_LIMIT.baseline_seconds, min=1.0, max=3600.0)
    overload_queue_target_seconds: float = c.setting(_QUEUE.target_seconds, min=0.0005, max=10.0)
    overload_queue_shedding: bool = c.setting(_QUEUE.refuse)
    overload_queue_max_shed: float = c.setting(_QUEUE.max_fraction, min=0.01, max=0.99)
    overload_queue_interval_seconds: float = c.setting(_QUEUE.interval_seconds, min=0.001, max=60.0)
    overload_probe_interval_seconds: float = c.setting(
        _QUEUE.probe_interval_seconds, min=0.001, max=10.0
    )
    overload_retry_after_seconds: float = c.setting(0.05, min=0.001, max=60.0)
    retry_budget_ratio: float = c.setting(_RETRY.ratio, min=0.0, max=1.0)
    retry_budget_min_per_second: float = c.setting(_RETRY.min_per_second, min=0.0, max=1000.0)
    retry_budget_window_seconds: float = c.setting(_RETRY.window_seconds, min=0.1, max=3600.0)
    retry_max_per_call: int = c.setting(_RETRY.max_retries, min=0, max=10)
    # 0: no bound (core.py). Calls in flight per process that grpc.aio takes from core, and
    # streams per HTTP/2 connection. The stream bound, its excess refused by gRPC's
    # transport, is what keeps goodput at twice the peak when every caller has a connection
    # of its own; it is off by default because a connection that carries many users' calls
    # (another service's, a gateway's) meets it too (README.md here, "The stream bound").
    grpc_max_concurrent_rpcs: int = c.setting(0, min=0, max=100_000)
    grpc_max_concurrent_streams: int = c.setting(0, min=0, max=100_000)
    # Streams beyond that bound: refused by gRPC's transport at once, or queued by clients.
    grpc_excess_streams: str = c.setting(REFUSE, choices=EXCESS_STREAMS)

    # Health and reflection calls (or reflection messages) per second per caller address,
    # and the burst at once: never shed, never authenticated, so limited here instead
    # (libs/platform/builtin_limits.py). 0 per second: no limit.
    builtin_services_per_second: float = c.setting(BuiltinLimits.per_second, min=0.0, max=1e6)
    builtin_services_burst: float = c.setting(BuiltinLimits.burst, min=1.0, max=1e6)

    def builtin_limits(self) -> BuiltinLimits | None:
        if not self.builtin_services_per_second:
            return None
        return BuiltinLimits(self.builtin_services_per_second, self.builtin_services_burst)

    def core_limits(self) -> CoreLimits:
        return CoreLimits(
            max_concurrent_rpcs=self.grpc_max_concurrent_rpcs or None,
            max_concurrent_streams=self.grpc_max_concurrent_streams or None,
            excess_streams=self.grpc_excess_streams,
        )

    def limit_policy(self) -> LimitPolicy | None:
        """The adaptive limit's tuning; None when shedding is switched off."""
        if not self.overload_shedding:
            return None
        return LimitPolicy(
            initial=self.overload_initial_limit,
            min_limit=self.overload_min_limit,
            max_limit=self.overload_max_limit,
            tolerance=self.overload_latency_tolerance,
            allowance_seconds=self.overload_queue_target_seconds,
            window_seconds=self.overload_window_seconds,
            baseline_seconds=self.overload_baseline_seconds,
        )

    def queue_policy(self) -> QueuePolicy:
        return QueuePolicy(
            target_seconds=self.overload_queue_target_seconds,
            interval_seconds=self.overload_queue_interval_seconds,
            max_fraction=self.overload_queue_max_shed,
            refuse=self.overload_queue_shedding,
            probe_interval_seconds=self.overload_probe_interval_seconds,
            baseline_seconds=self.overload_baseline_seconds,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            ratio=self.retry_budget_ratio,
            min_per_second=self.retry_budget_min_per_second,
            window_seconds=self.retry_budget_window_seconds,
            max_retries=self.retry_max_per_call,
        )

    def __post_init__(self) -> None:
        # load_settings reports a ConfigError like any other bad setting (exit code 2).
        if not (self.overload_min_limit <= self.overload_initial_limit <= self.overload_max_limit):
            raise c.ConfigError(
                "OVERLOAD_MIN_LIMIT <= OVERLOAD_INITIAL_LIMIT <= OVERLOAD_MAX_LIMIT must hold, "
                f"got {self.overload_min_limit}, {self.overload_initial_limit}, "
                f"{self.overload_max_limit}"
            )
