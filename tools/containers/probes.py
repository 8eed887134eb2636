"""The manifests' gRPC probes, asked the way the kubelet asks them, with every answer kept.

A probe attempt is grpc.health.v1 Check(service) on its port over a fresh connection (the
kubelet dials anew each time), answered within timeoutSeconds. Attempts start at
initialDelaySeconds and repeat every periodSeconds until one answers SERVING (passed) or
failureThreshold attempts in a row did not (failed: the kubelet would restart the container).
Readiness and liveness begin once the startup probe passed, as in Kubernetes.

Besides the probes' own schedule, `watch_start` polls readiness every POLL seconds to time
the container from `docker run` to SERVING more finely than a 2 s probe period can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.containers.spec import ContainerSpec, Probe

SERVING = "SERVING"
POLL = 0.05
# Still running? Asked after each failed attempt, so a crashed container fails at once.
Alive = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Answer:
    at: float  # seconds after `docker run` was called
    status: str  # a health status (SERVING, NOT_SERVING, ...) or the gRPC error code
    latency: float

    def __str__(self) -> str:
        return f"{self.at:.2f}s {self.status} ({self.latency * 1000:.0f} ms)"


@dataclass(frozen=True)
class ProbeResult:
    kind: str  # startup, readiness, liveness
    probe: Probe
    answers: tuple[Answer, ...]
    passed: bool
    why_not: str = ""

    @property
    def passed_at(self) -> float | None:
        return self.answers[-1].at if self.passed else None

    def __str__(self) -> str:
        verdict = f"passed at {self.passed_at:.2f}s" if self.passed else f"FAILED: {self.why_not}"
        name = self.probe.service or '""'
        answers = "; ".join(map(str, self.answers))
        return f"{self.kind}({name}, every {self.probe.period}s) {verdict} [{answers}]"


@dataclass(frozen=True)
class StartReport:
    service: str
    first_serving: float | None  # seconds from `docker run` to readiness SERVING
    probes: tuple[ProbeResult, ...]

    @property
    def ready(self) -> bool:
        # As in Kubernetes, a container without probes counts as ready once it runs.
        return all(p.passed for p in self.probes)


async def check(host: str, port: int, service: str, within: float) -> tuple[str, float]:
    """One Check over a new connection, answered `within` seconds (the probe's timeoutSeconds)
    or counted as a failure: (status or gRPC error code, seconds it took)."""
    start = time.monotonic()
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=within
            )
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
    return status, time.monotonic() - start


async def run_probe(
    kind: str, probe: Probe, host: str, t0: float, not_before: float, alive: Alive
) -> ProbeResult:
    """Attempts on the probe's schedule, from `not_before` (seconds after t0)."""
    answers: list[Answer] = []
    next_at = max(probe.initial_delay, not_before)
    failures = 0
    while True:
        await asyncio.sleep(max(0.0, t0 + next_at - time.monotonic()))
        at = time.monotonic() - t0
        status, latency = await check(host, probe.port, probe.service, probe.timeout)
        answers.append(Answer(at, status, latency))
        if status == SERVING:
            return ProbeResult(kind, probe, tuple(answers), passed=True)
        failures += 1
        if failures >= probe.failure_threshold:
            why = f"{failures} attempts in a row without SERVING"
            return ProbeResult(kind, probe, tuple(answers), passed=False, why_not=why)
        if not await alive():
            return ProbeResult(kind, probe, tuple(answers), passed=False, why_not="exited")
        next_at += probe.period


async def _first_serving(
    host: str, probe: Probe, t0: float, give_up: float, alive: Alive
) -> float | None:
    while time.monotonic() - t0 < give_up:
        status, _ = await check(host, probe.port, probe.service, probe.timeout)
        if status == SERVING:
            return time.monotonic() - t0
        if not await alive():
            return None
        await asyncio.sleep(POLL)
    return None


def _budget(probe: Probe) -> float:
    """How long the kubelet keeps asking before it gives up on the container."""
    return probe.initial_delay + probe.period * probe.failure_threshold + probe.timeout


async def _probe_sequence(
    spec: ContainerSpec, host: str, t0: float, alive: Alive
) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    not_before = 0.0
    startup = spec.probes.get("startup")
    if startup is not None:
        started = await run_probe("startup", startup, host, t0, 0.0, alive)
        results.append(started)
        if started.passed_at is None:
            return results
        not_before = started.passed_at
    results += await asyncio.gather(
        *(
            run_probe(kind, spec.probes[kind], host, t0, not_before, alive)
            for kind in ("readiness", "liveness")
            if kind in spec.probes
        )
    )
    return results


async def watch_start(spec: ContainerSpec, host: str, t0: float, alive: Alive) -> StartReport:
    """Startup, then readiness and liveness, as `spec` asks; t0 is when `docker run` began.

    The readiness service is also polled every POLL seconds alongside, for first_serving.
    """
    readiness = spec.probes.get("readiness")
    if readiness is None:
        return StartReport(spec.name, None, tuple(await _probe_sequence(spec, host, t0, alive)))
    startup = spec.probes.get("startup")
    give_up = _budget(startup) + _budget(readiness) if startup else _budget(readiness)
    first, results = await asyncio.gather(
        _first_serving(host, readiness, t0, give_up, alive),
        _probe_sequence(spec, host, t0, alive),
    )
    return StartReport(spec.name, first, tuple(results))
