"""Process entry helper: config errors exit 2, SIGTERM/SIGINT trigger a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from libs.platform.config import ConfigError, check_ip_address, load_settings, setting
from libs.platform.db import DatabaseUnavailable
from libs.platform.logs import flush_logging, setup_logging
from libs.platform.metrics import DEFAULT_METRICS_ADDRESS, MetricsEndpoint
from libs.platform.tracing import setup_tracing

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass(frozen=True)
class ProcessSettings:
    """Settings every service process shares, read alongside the service's own."""

    # Calls in flight at SIGTERM get this long to finish; Kubernetes' default
    # terminationGracePeriodSeconds (30) must stay above it.
    shutdown_grace_seconds: float = setting(10.0, min=0.0, max=3600.0)
    metrics_port: int = setting(9090, min=0, max=65535)  # 0 = any free port
    # Loopback unless set: /metrics answers anyone who can connect. Kubernetes sets 0.0.0.0
    # so the cluster's scraper reaches the pod (deploy/kustomize).
    metrics_address: str = setting(DEFAULT_METRICS_ADDRESS, check=check_ip_address)


class RunningApp(Protocol):
    @property
    def port(self) -> int: ...

    async def stop(self, grace: float | None = ...) -> None: ...


def _open_metrics(app: RunningApp, host: str, port: int) -> MetricsEndpoint | None:
    # Services return an app holding the GrpcServer; a bare GrpcServer (the bench's empty
    # server) carries the metrics itself.
    server = getattr(app, "server", app)
    metrics = getattr(server, "metrics", None)
    if metrics is None:
        return None
    try:
        return MetricsEndpoint(metrics.registry, port, host)
    except OSError as exc:  # the port is taken: serve without metrics rather than not at all
        log.warning(
            "metrics endpoint not started", extra={"host": host, "port": port, "error": repr(exc)}
        )
        return None


async def _serve(
    start: Callable[[S], Awaitable[RunningApp]], settings: S, proc: ProcessSettings
) -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    app = await start(settings)
    endpoint = _open_metrics(app, proc.metrics_address, proc.metrics_port)
    try:
        await stop_requested.wait()
        grace = proc.shutdown_grace_seconds
        log.info("shutdown requested, draining", extra={"grace_s": grace})
    finally:
        # New calls are refused at once; calls in flight get the grace period.
        await app.stop(proc.shutdown_grace_seconds)
        if endpoint is not None:
            endpoint.close()


def run_main(
    service: str,
    settings_cls: type[S],
    start: Callable[[S], Awaitable[RunningApp]],
) -> int:
    """Load settings, set up logs, serve until signalled. Returns the process exit code."""
    try:
        settings = load_settings(settings_cls)
        proc = load_settings(ProcessSettings)
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 2
    setup_logging(getattr(settings, "log_level", "INFO"), service=service)
    workers = _workers()
    if workers is None:
        return 2
    if workers > 1:
        # One metrics endpoint per worker (a port cannot be shared): METRICS_PORT + index.
        return _supervise(
            workers,
            lambda index: _serve_once(service, start, settings, _worker_proc(proc, index)),
        )
    return _serve_once(service, start, settings, proc)


def _serve_once(
    service: str, start: Callable[[S], Awaitable[RunningApp]], settings: S, proc: ProcessSettings
) -> int:
    # Per process (after any fork): the span exporter runs a background thread.
    close_tracing = setup_tracing(service)
    try:
        asyncio.run(_serve(start, settings, proc))
    except DatabaseUnavailable as exc:
        log.error("cannot start: %s", exc)
        return 1
    except Exception:
        log.exception("service failed")
        return 1
    finally:
        close_tracing()
    log.info("service stopped")
    return 0


def _worker_proc(proc: ProcessSettings, index: int) -> ProcessSettings:
    port = proc.metrics_port
    return dataclasses.replace(proc, metrics_port=port + index if port else 0)


def _workers() -> int | None:
    raw = os.environ.get("WORKERS", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        print(f"WORKERS: must be an integer from 1 to 64, got {raw!r}", file=sys.stderr)
        return None
    return int(raw)


def _supervise(workers: int, serve: Callable[[int], int]) -> int:
    """Fork `workers` processes that each serve on the same port.

    One Python process runs one event loop on one core. gRPC core sets SO_REUSEPORT on
    its listening sockets by default, so every worker binds the same port and the kernel
    spreads new connections across them (a single HTTP/2 connection stays on one worker).
    Each worker has its own pool, so the database sees workers * DB_POOL_MAX_SIZE
    connections. Forking happens before any gRPC or asyncio object exists, which is what
    gRPC's fork rules require. If a worker dies, the rest are stopped and its exit code is
    returned, so the orchestrator restarts the whole set.
    """
    children: dict[int, int] = {}
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # child: serve, then leave without running the parent's cleanup
            code = 1
            try:
                code = serve(index)
            finally:
                flush_logging()  # os._exit skips atexit, which would write queued lines
                os._exit(code)
        children[pid] = index
    log.info("workers started", extra={"workers": workers, "pids": sorted(children)})

    def forward(signum: int, frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    result = 0
    while children:
        pid, status = os.wait()
        if children.pop(pid, None) is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and result == 0:
            result = code if code > 0 else 1
            log.error("worker exited, stopping the others", extra={"pid": pid, "code": code})
            forward(signal.SIGTERM, None)
    return result
