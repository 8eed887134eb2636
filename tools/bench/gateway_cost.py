"""What the HTTP/JSON gateway costs per call: GetUser over gRPC straight to usersvc against
the same call as GET /v1/users/{id} through the gateway (gateway/), in one run, rounds
interleaved, closed loop from h2load (HTTP/2 gRPC, and HTTP/1.1 for the gateway as a
browser or curl would call it). Writes tools/bench/results/gateway.md.

    tools/bench/run.sh --gateway

The gateway is a program of another Bazel module; run.sh builds it and passes --gateway and
--openapi.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from libs.platform.testing.net import free_port
from tools.bench.cli import BINARIES
from tools.bench.h2load import H2Load, read_log, run_argv
from tools.bench.load import percentile
from tools.bench.startup import seed
from tools.bench.system import System, cpu_seconds, wait_answering

WARMUP_S = 1.0  # unmeasured seconds before each point, both arms


@dataclass(frozen=True)
class Point:
    arm: str
    rate: float  # OK calls per second
    cpu_ms_per_call: float  # usersvc's, plus the gateway's through it
    p50_ms: float


def http_point(
    h2: H2Load, url: str, token: str, concurrency: int, duration_s: float
) -> tuple[float, float]:
    """OK answers per second and their p50 (ms), over HTTP/1.1 with one request in flight
    per connection, so `concurrency` connections."""
    with tempfile.TemporaryDirectory(prefix="micro-h2load-") as tmp:
        log = Path(tmp) / "requests.tsv"
        done = run_argv(
            [
                h2.path,
                "--h1",
                f"--clients={concurrency}",
                "--threads=1",
                f"--duration={duration_s:g}s",
                f"--warm-up-time={WARMUP_S:g}s",
                f"--header=authorization: Bearer {token}",
                f"--log-file={log}",
                url,
            ],
            timeout_s=duration_s + 60,
        )
        window = read_log(log, done)
    if window.errors():
        raise RuntimeError(f"the gateway answered some calls with no 2xx: {window.errors()}")
    return window.answered / duration_s, percentile(window.latencies_ms, 0.50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in BINARIES:
        parser.add_argument(f"--{name}", required=True, help=f"path to the {name} binary")
    parser.add_argument("--gateway", required=True, help="the gateway program (gateway/)")
    parser.add_argument("--openapi", required=True, help="its OpenAPI document")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    parser.add_argument("--out", type=Path, default=workspace / "tools/bench/results/gateway.md")
    args = parser.parse_args(argv)
    found = shutil.which("h2load")
    if not found:
        parser.error("h2load is not on PATH (Debian package nghttp2-client)")
    h2 = H2Load(found)

    system = System({n: getattr(args, n) for n in BINARIES}, log_level="INFO")
    gateway: subprocess.Popen[bytes] | None = None
    points: list[Point] = []
    try:
        system.start_database()
        system.environments()
        for name in ("usersvc", "authsvc"):
            system.start(name)
        user_id, token, _ = seed(system)
        port = free_port()
        # Its log goes to the system's scratch directory, which system.stop() removes; the
        # child keeps the file open after ours is closed.
        assert system.tmp is not None
        with (system.tmp / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(  # noqa: S603 - the gateway we were given
                [
                    args.gateway,
                    f"--listen=127.0.0.1:{port}",
                    f"--usersvc={system.addr('usersvc')}",
                    f"--authsvc={system.addr('authsvc')}",
                    f"--paymentsvc={system.addr('usersvc')}",  # unused by GetUser
                    f"--openapi={args.openapi}",
                ],
                stderr=log,
            )
        url = f"http://127.0.0.1:{port}/v1/users/{user_id}"
        wait_answering(f"http://127.0.0.1:{port}/healthz", gateway)
        for round_ in range(args.rounds):
            # Alternate which arm goes first, so a drift of the machine falls on both.
            for arm in ("grpc", "http") if round_ % 2 == 0 else ("http", "grpc"):
                pids = [system.pid("usersvc")] + ([gateway.pid] if arm == "http" else [])
                before = sum(map(cpu_seconds, pids))
                if arm == "grpc":
                    result = h2.run(
                        "GetUser",
                        system.addr("usersvc"),
                        args.concurrency,
                        duration_s=args.duration,
                        warmup_s=WARMUP_S,
                        user_id=user_id,
                        metrics_urls=system.metrics_urls("usersvc"),
                        token=token,
                    )
                    rate, p50 = result.rate, result.p50_ms
                else:
                    rate, p50 = http_point(h2, url, token, args.concurrency, args.duration)
                used = sum(map(cpu_seconds, pids)) - before
                # CPU over warm-up and measurement alike, per call of the measured window
                # scaled to the whole: the same for both arms.
                calls = rate * (args.duration + WARMUP_S)
                points.append(Point(arm, rate, used / calls * 1000 if calls else float("nan"), p50))
                done = points[-1]
                print(
                    f"round {round_ + 1} {arm}: {rate:,.0f}/s, {done.cpu_ms_per_call:.3f} ms CPU",
                    file=sys.stderr,
                )
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=15)
        system.stop()
    args.out.write_text(report(points, args))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def report(points: list[Point], args: argparse.Namespace) -> str:
    def median(arm: str, field: str) -> float:
        return float(statistics.median(float(getattr(p, field)) for p in points if p.arm == arm))

    grpc_rate, http_rate = median("grpc", "rate"), median("http", "rate")
    grpc_cpu, http_cpu = median("grpc", "cpu_ms_per_call"), median("http", "cpu_ms_per_call")
    rows = "\n".join(
        f"| {p.arm} | {p.rate:,.0f} | {p.cpu_ms_per_call:.3f} | {p.p50_ms:.2f} |" for p in points
    )
    return f"""# The gateway's cost per call

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Rerun: `tools/bench/run.sh --gateway`
(tools/bench/gateway_cost.py). GetUser for one user, closed loop from h2load at
{args.concurrency} calls in flight, {args.rounds} rounds of {args.duration:.0f} s per arm
after {WARMUP_S:g} s of warm-up, arms alternating: **grpc** straight to usersvc (HTTP/2, gRPC), **http**
as `GET /v1/users/{{id}}` through the gateway (HTTP/1.1, JSON, {args.concurrency}
connections), which calls usersvc over gRPC. usersvc and authsvc at their defaults, one
worker; everything, h2load included, on this machine's CPUs. "CPU per call" is usersvc's
CPU, plus the gateway's for the http arm, over the point, per OK call.

| arm | calls/s | CPU per call (ms) | p50 (ms) |
| --- | ---: | ---: | ---: |
{rows}

Medians: the gateway's path serves **{http_rate / grpc_rate:.0%}** of the direct gRPC calls
per second, at **{http_cpu / grpc_cpu:.2f}x** the CPU per call (usersvc's
{grpc_cpu:.3f} ms, against {http_cpu:.3f} ms for usersvc and the gateway together).
p50 is h2load's, from its log of every request in the measured window.
"""


if __name__ == "__main__":
    sys.exit(main())
