"""Prometheus metrics for one gRPC server: calls, latency, pool usage and health.

Each server owns a CollectorRegistry (not the process-global one) so several services can
run in one process, as they do in the tests. The runner serves it over HTTP on
METRICS_ADDRESS:METRICS_PORT.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Milliseconds to tens of seconds: loopback calls are ~1 ms, deadlines go up to ~30 s.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _PoolCollector(Collector):
    """Reads pool sizes at scrape time, so the numbers are never stale."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = self._pool.get_size()
        idle = self._pool.get_idle_size()
        yield GaugeMetricFamily("db_pool_size", "Open connections in the pool", value=size)
        yield GaugeMetricFamily("db_pool_idle", "Idle connections in the pool", value=idle)
        yield GaugeMetricFamily(
            "db_pool_in_use", "Connections checked out of the pool", value=size - idle
        )
        yield GaugeMetricFamily(
            "db_pool_max_size", "Upper bound on pool connections", value=self._pool.get_max_size()
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "grpc_server_handled",
            "Completed unary calls by method and status code",
            ["grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Unary call latency by method",
            ["grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.health = Gauge(
            "health_serving",
            "1 while the service reports SERVING (its database answers), else 0",
            registry=self.registry,
        )
        self.health.set(1)
        self._pool_collector: _PoolCollector | None = None
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        # Label children are looked up once per (method, code): labels() takes a lock and
        # validates the labels on every call, a measurable share of a ~1 ms call.
        children = self._children.get((method, code))
        if children is None:
            children = (self.calls.labels(method, code), self.latency.labels(method))
            self._children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def set_serving(self, serving: bool) -> None:
        self.health.set(1 if serving else 0)

    def track_pool(self, pool: asyncpg.Pool) -> None:
        if self._pool_collector is not None:
            self.registry.unregister(self._pool_collector)
        self._pool_collector = _PoolCollector(pool)
        self.registry.register(self._pool_collector)


# /metrics has no authentication, so by default only this host may scrape it; a pod sets
# METRICS_ADDRESS=0.0.0.0 and leaves who may connect to the cluster's network rules.
DEFAULT_METRICS_ADDRESS = "127.0.0.1"


class MetricsEndpoint:
    """/metrics over HTTP in a daemon thread on `host`; port 0 picks a free port."""

    def __init__(
        self, registry: CollectorRegistry, port: int, host: str = DEFAULT_METRICS_ADDRESS
    ) -> None:
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_port
        log.info("metrics listening", extra={"host": host, "port": self.port})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
