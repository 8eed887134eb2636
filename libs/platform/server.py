"""grpc.aio server bootstrap with health, reflection and the platform interceptors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from libs.platform.interceptors import ObservabilityInterceptor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRegistration:
    full_name: str  # e.g. "user.v1.UserService"
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


class GrpcServer:
    def __init__(self, server: grpc.aio.Server, health_servicer: Any, port: int) -> None:
        self._server = server
        self._health = health_servicer
        self.port = port

    async def stop(self, grace: float | None = 5.0) -> None:
        # Tell load balancers first so new traffic goes elsewhere during the grace period.
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        log.info("grpc server stopped", extra={"port": self.port})

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


async def start_server(
    services: Sequence[ServiceRegistration],
    *,
    host: str = "[::]",
    port: int = 0,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Start serving; port 0 picks a free port. Returns the running server and bound port."""
    server = grpc.aio.server(interceptors=[ObservabilityInterceptor(), *interceptors])
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
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC server to {host}:{port}")
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    for name in names:
        await health_servicer.set(name, serving)
    log.info("grpc server listening", extra={"host": host, "port": bound, "services": names})
    return GrpcServer(server, health_servicer, bound)
