"""The server side: every unary call takes a place under the process's AdaptiveLimit, and a
call that finds none, or that the QueueGate picks while calls queue before the handlers, is
answered at once with RESOURCE_EXHAUSTED and a RetryInfo delay.

When the limit is reached, the caller holding the most places is shed first: a call from a
caller (its address: an IPv4 address or an IPv6 /64) that holds fewer places than the
largest holder may still take one of a few places beyond the limit (a quarter of it), and
the largest holder's calls are refused. So one address flooding a server that a slow
dependency holds at its limit cannot take every place from everyone else. A service that
calls for many users counts as one caller here; the users behind it are held to their own
share by the per-user cap on calls in flight (USER_MAX_IN_FLIGHT, auth/verification.py).

The interceptor is the outermost one, so a refused call costs no tracing, authentication,
request parsing or log line: its raw bytes are never decoded. Health checks (the probes
that keep the pod in rotation and alive) and reflection are never limited.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from libs.platform.admission import client_address, retry_status
from libs.platform.metrics import Metrics
from libs.platform.overload.limit import AdaptiveLimit, LimitPolicy
from libs.platform.overload.probe import is_probe_peer
from libs.platform.overload.queue import QueueGate, QueuePolicy
from libs.platform.rpc_types import Context, Continuation, Handler, UnaryBehavior, unary_behavior

log = logging.getLogger(__name__)

# Never shed: load balancers and kubelets must keep hearing the truth about this process.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
REFUSAL = "too many calls in flight on this server"
SHED_CODE = grpc.StatusCode.RESOURCE_EXHAUSTED.name
# One warning per this many seconds while shedding, not one log line per refused call.
LOG_EVERY_S = 10.0
# Methods known to exist (a handler was found for them), so refusals are counted and
# answered per method; a caller sending made-up method names cannot grow this set.
MAX_KNOWN_METHODS = 1000


class SheddingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        policy: LimitPolicy,
        *,
        queue: QueuePolicy,
        retry_after: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.queue = QueueGate(queue, clock())
        gate = self.queue
        self.limit = AdaptiveLimit(policy, clock(), cpu_short=lambda: gate.standing)
        self._metrics = metrics
        self.shed: Counter[tuple[str, str]] = Counter()  # refused calls by method, reason
        self.holding: Counter[str] = Counter()  # places held, by caller address
        self._known: set[str] = set()
        status = retry_status(REFUSAL, retry_after, whole_seconds=False)
        self._code, self._details = status.code, status.details
        self._trailers = status.trailing_metadata
        self._refusers: dict[tuple[str, str], Handler] = {}
        self._logged_at = clock()
        self._shed_since_log = 0
        if metrics is not None:
            metrics.registry.register(_LimitCollector(self))

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        if method.startswith(EXEMPT_PREFIXES):
            return await continuation(handler_call_details)
        if method in self._known:
            # Refused before the rest of the chain runs: the cheapest answer there is. (Who
            # calls is not known here, so places beyond the limit are decided in _limited.)
            if not self.limit.has_room(self._overflow()):
                return self._refuser(method, "limit")
            if self.queue.refuse_next():
                return self._refuser(method, "queue")
        handler = await continuation(handler_call_details)
        inner = unary_behavior(handler) if handler is not None else None
        if handler is None or inner is None:
            return handler  # an unknown method (UNIMPLEMENTED) or a stream: not limited
        if len(self._known) < MAX_KNOWN_METHODS:
            self._known.add(method)
        return self._limited(method, handler, inner)

    def _limited(self, method: str, handler: Handler, inner: UnaryBehavior) -> Handler:
        decode = handler.request_deserializer
        limit, clock, holding = self.limit, self._clock, self.holding

        async def limited(raw: bytes, context: Context) -> Any:
            # The place is taken here, not in intercept_service: a call cancelled before
            # its request arrives never runs its handler, and would never give it back.
            if is_probe_peer(context.peer()):
                # The probe's private listener has no TLS; it serves nothing but the probe.
                context.set_code(grpc.StatusCode.PERMISSION_DENIED)
                context.set_details("this listener serves only the overload probe")
                return None
            caller = client_address(context.peer())
            if not self._try_acquire(caller):
                return self._refuse(method, "limit", context)
            holding[caller] += 1
            start = clock()
            latency: float | None = None
            try:
                response = await inner(decode(raw) if decode else raw, context)
                if context.code() in (None, grpc.StatusCode.OK):
                    latency = clock() - start
                return response
            finally:
                limit.release(method, latency, clock())
                holding[caller] -= 1
                if not holding[caller]:
                    del holding[caller]

        # Bytes in: a refused call is never decoded; an admitted one is decoded above by
        # the chain's own deserializer (which never raises: libs/platform/decoding.py).
        return grpc.unary_unary_rpc_method_handler(
            limited, response_serializer=handler.response_serializer
        )

    def _overflow(self) -> int:
        return max(1, self.limit.limit // 4)

    def _try_acquire(self, caller: str) -> bool:
        """A place under the limit for anyone; at the limit, one of the places beyond it
        for a caller that would still hold fewer than the largest holder."""
        if self.limit.try_acquire():
            return True
        # Callers with calls in flight: at most the limit plus the overflow of them.
        top = max(self.holding.values(), default=0)
        return self.holding[caller] + 1 < top and self.limit.try_acquire(self._overflow())

    def _refuser(self, method: str, reason: str) -> Handler:
        handler = self._refusers.get((method, reason))
        if handler is None:

            async def refuse(requests: object, context: Context) -> None:
                return self._refuse(method, reason, context)

            handler = grpc.stream_unary_rpc_method_handler(refuse)
            self._refusers[(method, reason)] = handler
        return handler

    def _refuse(self, method: str, reason: str, context: Context) -> None:
        # Status set and None returned: grpc.aio then sends the status without a message
        # and without the exception that abort() raises.
        context.set_code(self._code)
        context.set_details(self._details)
        context.set_trailing_metadata(self._trailers)
        self.shed[(method, reason)] += 1
        if self._metrics is not None:
            self._metrics.observe(method, SHED_CODE, 0.0)
        self._shed_since_log += 1
        now = self._clock()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "shedding load",
                extra={
                    "shed": self._shed_since_log,
                    "seconds": round(now - self._logged_at, 1),
                    "limit": self.limit.limit,
                    "in_flight": self.limit.in_flight,
                    "queue_wait_ms": round(self.queue.last_wait * 1000, 1),
                    "queue_shed_fraction": round(self.queue.fraction, 2),
                },
            )
            self._logged_at, self._shed_since_log = now, 0


class _LimitCollector(Collector):
    """The limiter's state, read at scrape time."""

    def __init__(self, shedder: SheddingInterceptor) -> None:
        self._shedder = shedder

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        limit = self._shedder.limit
        yield GaugeMetricFamily(
            "overload_concurrency_limit",
            "Calls this process admits at once (adaptive; libs/platform/overload)",
            value=limit.limit,
        )
        yield GaugeMetricFamily(
            "overload_in_flight", "Admitted calls now in flight", value=limit.in_flight
        )
        queue = self._shedder.queue
        yield GaugeMetricFamily(
            "overload_queue_wait_seconds",
            "How long the last probe waited before the process took it (queue.py)",
            value=queue.last_wait,
        )
        yield GaugeMetricFamily(
            "overload_queue_shed_fraction",
            "Share of new calls refused because calls wait before the handlers",
            value=queue.fraction,
        )
        shed = CounterMetricFamily(
            "overload_shed",
            "Calls refused with RESOURCE_EXHAUSTED: at the concurrency limit (reason=limit) or "
            "while calls queue before the handlers (reason=queue)",
            labels=["grpc_method", "reason"],
        )
        for (method, reason), n in sorted(self._shedder.shed.items()):
            shed.add_metric([method, reason], n)
        yield shed
