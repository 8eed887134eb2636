"""grpc.aio server bootstrap with health, reflection and the platform interceptors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from libs.platform.builtin_limits import BuiltinLimitInterceptor, BuiltinLimits
from libs.platform.decoding import RequestDecodingInterceptor
from libs.platform.health import LIVENESS_SERVICE, ReadinessWatcher, pool_check
from libs.platform.metrics import Metrics
from libs.platform.observability import ObservabilityInterceptor
from libs.platform.overload.core import NO_CORE_LIMITS, CoreLimits
from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.probe import QueueProbe, probe_address
from libs.platform.overload.queue import QueuePolicy
from libs.platform.overload.shedding import SheddingInterceptor
from libs.platform.stalls import StallMonitor
from libs.platform.tls import DEFAULT_MAX_MESSAGE_BYTES, message_size_options
from libs.platform.tracing import ServerTracingInterceptor

log = logging.getLogger(__name__)

# A shed call's RetryInfo delay: long enough for calls in flight to finish, short enough
# that a retry lands while the caller still waits (OVERLOAD_RETRY_AFTER_SECONDS).
DEFAULT_SHED_RETRY_AFTER_S = 0.05
DEFAULT_LIMIT = LimitPolicy()
DEFAULT_QUEUE = QueuePolicy()
DEFAULT_BUILTIN_LIMITS = BuiltinLimits()


@dataclass(frozen=True)
class ServiceRegistration:
    full_name: str  # e.g. "user.v1.UserService"
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


class GrpcServer:
    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: Any,
        port: int,
        metrics: Metrics | None = None,
        names: Sequence[str] = (),
        shedding: SheddingInterceptor | None = None,
        probe: QueueProbe | None = None,
        stalls: StallMonitor | None = None,
    ) -> None:
        self._server = server
        self.shedding = shedding
        self._probe = probe
        self._stalls = stalls
        self._health = health_servicer
        self.port = port
        self.metrics = metrics or Metrics()
        self._names = list(names)
        self.readiness: ReadinessWatcher | None = None

    def watch_database(
        self, pool: asyncpg.Pool, *, interval: float = 1.0, timeout: float = 1.0
    ) -> ReadinessWatcher:
        """Report SERVING only while the pool answers; also export the pool's gauges."""
        self.metrics.track_pool(pool)
        self.readiness = ReadinessWatcher(
            self._health,
            self._names,
            pool_check(pool, timeout),
            interval=interval,
            on_change=self.metrics.set_serving,
        )
        self.readiness.start()
        return self.readiness

    async def stop(self, grace: float | None = 5.0) -> None:
        if self._probe is not None:
            await self._probe.stop()
        if self.readiness is not None:
            await self.readiness.stop()  # or it could flip health back to SERVING
        # Tell load balancers first so new traffic goes elsewhere during the grace period.
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        if self._stalls is not None:
            await self._stalls.stop()
        log.info("grpc server stopped", extra={"port": self.port})

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


async def start_server(
    services: Sequence[ServiceRegistration],
    *,
    host: str = "[::]",
    port: int = 0,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    overload: LimitPolicy | None = DEFAULT_LIMIT,
    queue: QueuePolicy = DEFAULT_QUEUE,
    shed_retry_after: float = DEFAULT_SHED_RETRY_AFTER_S,
    core: CoreLimits = NO_CORE_LIMITS,
    builtin: BuiltinLimits | None = DEFAULT_BUILTIN_LIMITS,
) -> GrpcServer:
    """Start serving; port 0 picks a free port. Returns the running server and bound port.

    With `credentials` the port speaks TLS only; oversized messages get RESOURCE_EXHAUSTED,
    request bytes that do not parse INVALID_ARGUMENT (libs/platform/decoding.py). Unary calls
    beyond the adaptive limit `overload`, or refused while calls queue before the handlers
    (`queue`), get RESOURCE_EXHAUSTED with a RetryInfo of `shed_retry_after` seconds
    (libs/platform/overload; `overload=None` turns both off). `core` bounds what gRPC's core
    and HTTP/2 let in before any Python runs (libs/platform/overload/core.py). Health and
    reflection, never shed, are limited per caller address by `builtin`
    (libs/platform/builtin_limits.py; None: no limit).
    """
    metrics = Metrics()
    shedding = (
        None
        if overload is None
        else SheddingInterceptor(
            overload, queue=queue, retry_after=shed_retry_after, metrics=metrics
        )
    )
    server = grpc.aio.server(
        # The first is outermost. The limits go first, so a refused call costs the least;
        # request decoding goes last: it must see the registered handler's own
        # deserializer, and callers must authenticate before it answers.
        interceptors=[
            *([BuiltinLimitInterceptor(builtin)] if builtin is not None else []),
            *([shedding] if shedding is not None else []),
            ServerTracingInterceptor(),
            ObservabilityInterceptor(metrics),
            *interceptors,
            RequestDecodingInterceptor(),
        ],
        options=[*message_size_options(max_message_bytes), *core.server_options()],
        maximum_concurrent_rpcs=core.max_concurrent_rpcs,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for svc in services:
        svc.add_to_server(svc.servicer, server)
    names = [svc.full_name for svc in services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if credentials is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", credentials)
    if bound == 0:
        raise OSError(f"could not bind gRPC server to {host}:{port}")
    probe = None
    if shedding is not None:
        address = probe_address()
        try:
            probed = server.add_insecure_port(address) != 0
        except RuntimeError:  # grpcio raises, or returns 0, when it cannot bind
            probed = False
        if probed:
            probe = QueueProbe(shedding.queue.probe, address, queue.probe_interval_seconds)
        else:
            # Serve without the queue gate rather than not at all; the limit still holds.
            log.warning("overload probe not started: cannot listen on %s", address)
    await server.start()
    if probe is not None:
        probe.start()
    stalls = StallMonitor(metrics.registry)
    stalls.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set(LIVENESS_SERVICE, serving)
    for name in names:
        await health_servicer.set(name, serving)
    log.info("grpc server listening", extra={"host": host, "port": bound, "services": names})
    return GrpcServer(server, health_servicer, bound, metrics, names, shedding, probe, stalls)
