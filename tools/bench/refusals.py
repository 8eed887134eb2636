"""What each way of saying no costs the server's CPU, against serving an empty call.

    tools/bazel run //tools/bench:refusals    # writes tools/bench/results/refusals.md

One server process per kind, built with the platform's own start_server (every
interceptor of a service), answering GetUser; h2load offers the same closed-loop load to
each (CONNECTIONS x STREAMS calls in flight) for DURATION_S, and the server's CPU time
over the window (/proc/PID/stat) is divided by the answers h2load got. The kinds:

  served       no protection; the handler answers at once: an empty call's cost
  interceptor  the adaptive limit fixed at 1 (libs/platform/overload/shedding.py)
  core         GRPC_MAX_CONCURRENT_RPCS=1: grpc.aio's own refusal, before any interceptor
  expired      no protection; each call arrives with its deadline already past (1 us)
  streams      GRPC_MAX_CONCURRENT_STREAMS=1, GRPC_EXCESS_STREAMS=queue: the client queues
               its own calls
  refused      GRPC_MAX_CONCURRENT_STREAMS=1, GRPC_EXCESS_STREAMS=refuse (the default mode):
               gRPC's transport answers streams beyond the bound with RST_STREAM
               REFUSED_STREAM. h2load keeps to the server's SETTINGS, so this kind's load is
               the C++ open-loop driver's (--open-loop-driver; tools/bench/run.sh passes it), at
               REFUSED_RATE calls/s over 8 connections; without the driver it is left out.

In the three refusing kinds the handler holds its place for HOLD_S without using the CPU,
so the one place is taken and nearly every call is refused: at most DURATION_S / HOLD_S
calls per process are served. With `streams` there is nothing to refuse: the server sees
one call per connection at a time, and the row shows what it spends while the clients
wait. Ratios matter, not absolute figures: the load generator shares the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from libs.platform.overload.core import NO_CORE_LIMITS, QUEUE, REFUSE, CoreLimits
from libs.platform.overload.limit import LimitPolicy
from libs.platform.overload.queue import QueuePolicy
from libs.platform.server import ServiceRegistration, start_server
from libs.platform.testing.net import free_port
from tools.bench.h2load import H2Load, Shape, grpc_frame, request
from tools.bench.native_openloop import NativeOpenLoopDriver
from tools.bench.openloop import window_start
from user.v1 import user_pb2, user_pb2_grpc

KINDS = ("served", "interceptor", "core", "expired", "streams", "refused")
REFUSED_RATE = 4000.0
CONNECTIONS, STREAMS = 4, 16
DURATION_S, WARMUP_S = 5.0, 1.0
HOLD_S = 0.05
ONE = LimitPolicy(initial=1, min_limit=1, max_limit=1)
QUIET = QueuePolicy(probe_interval_seconds=3600)


class Handler(user_pb2_grpc.UserServiceServicer):
    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s

    async def GetUser(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        return user_pb2.GetUserResponse(user_id=request.user_id)


async def _serve(kind: str, port: int) -> None:
    holds = kind in ("interceptor", "core", "streams", "refused")
    core = {
        "core": CoreLimits(max_concurrent_rpcs=1),
        "streams": CoreLimits(max_concurrent_streams=1, excess_streams=QUEUE),
        "refused": CoreLimits(max_concurrent_streams=1, excess_streams=REFUSE),
    }.get(kind, NO_CORE_LIMITS)
    server = await start_server(
        [
            ServiceRegistration(
                "user.v1.UserService",
                user_pb2_grpc.add_UserServiceServicer_to_server,
                # One method served; the rest answer UNIMPLEMENTED, as the base class's do.
                Handler(HOLD_S if holds else 0.0),  # type: ignore[abstract]
            )
        ],
        host="127.0.0.1",
        port=port,
        overload=ONE if kind == "interceptor" else None,
        queue=QUIET,
        core=core,
    )
    print("serving", flush=True)
    await server.wait_for_termination()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Row:
    kind: str
    answers: int
    cpu_s: float

    @property
    def per_answer_ms(self) -> float:
        return self.cpu_s / self.answers * 1000 if self.answers else float("nan")


def _native(driver: NativeOpenLoopDriver, server: subprocess.Popen[str], port: int) -> Row:
    start_at = window_start(REFUSED_RATE, None, WARMUP_S)
    cpu: dict[float, float] = {}

    def sample(at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        cpu[at] = _cpu_s(server.pid)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        marks = [pool.submit(sample, start_at), pool.submit(sample, start_at + DURATION_S)]
        point = driver.run(
            "GetUser",
            f"127.0.0.1:{port}",
            REFUSED_RATE,
            duration_s=DURATION_S,
            warmup_s=WARMUP_S,
            user_id="00000000-0000-0000-0000-000000000001",
            start_at=start_at,
            deadline_s=10.0,
        )
        for mark in marks:
            mark.result()
    answers = point.ok + point.shed + sum(point.errors.values())
    return Row("refused", answers, cpu[start_at + DURATION_S] - cpu[start_at])


def measure(h2: H2Load, kind: str, driver: NativeOpenLoopDriver | None = None) -> Row:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - this program, serving
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "serving":
            raise RuntimeError(f"{kind}: the server did not start")
        if kind == "refused":
            assert driver is not None
            return _native(driver, server, port)
        with tempfile.TemporaryDirectory(prefix="micro-refusals-") as tmp:
            body, log = Path(tmp) / "request.bin", Path(tmp) / "requests.tsv"
            body.write_bytes(grpc_frame(request("GetUser", "00000000-0000-0000-0000-000000000001")))
            argv = h2.argv(
                f"http://127.0.0.1:{port}/user.v1.UserService/GetUser",
                body,
                log,
                Shape(CONNECTIONS, STREAMS),
                duration_s=DURATION_S,
                warmup_s=WARMUP_S,
                token="",
                deadline_s=1e-6 if kind == "expired" else 10.0,
            )
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: S603
            time.sleep(WARMUP_S)
            cpu0 = _cpu_s(server.pid)
            out, _ = proc.communicate(timeout=WARMUP_S + DURATION_S + 60)
            cpu = _cpu_s(server.pid) - cpu0
            answers = sum(1 for _ in log.read_text().splitlines())
        if proc.returncode != 0:
            raise RuntimeError(f"{kind}: h2load failed:\n{out[-2000:]}")
        return Row(kind, answers, cpu)
    finally:
        server.terminate()
        server.wait(timeout=30)


def render(rows: list[Row], rounds: int) -> str:
    base = next(r for r in rows if r.kind == "served").per_answer_ms
    lines = [
        "# What a refusal costs (tools/bench/refusals.py)",
        "",
        (
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {CONNECTIONS}x{STREAMS} calls in "
            f"flight, {DURATION_S:g} s per kind after {WARMUP_S:g} s, the median of {rounds} "
            "rounds. Rerun: `tools/bazel run //tools/bench:refusals`."
        ),
        "",
        "| kind | answers/s | server CPU, cores | CPU per answer, ms | of an empty call |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.answers / DURATION_S:,.0f} | {r.cpu_s / DURATION_S:.2f} "
            f"| {r.per_answer_ms:.3f} | {r.per_answer_ms / base:.2f} |"
        )
    lines += [
        "",
        "The `streams` row serves one call per connection at a time, each holding its place",
        f"for {HOLD_S * 1000:g} ms: its CPU per answer is a held call's, and what counts is the",
        "server's CPU while the clients queue the other calls themselves.",
    ]
    if any(r.kind == "refused" for r in rows):
        lines += [
            "",
            f"The `refused` row's load is the C++ open-loop driver at {REFUSED_RATE:,.0f} calls/s",
            "(h2load keeps to the server's SETTINGS, so it never exceeds the bound); its answers",
            "are nearly all `UNAVAILABLE: Received RST_STREAM with error code 7`.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--h2load", default="h2load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--open-loop-driver",
        type=Path,
        default=None,
        help="the C++ open-loop driver (tools/cpp_build.sh //openloop:micro_openloop), for "
        "the `refused` kind",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(workspace) / "tools/bench/results/refusals.md"
    )
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve, args.port))
        return 0
    h2 = H2Load(args.h2load)
    driver = NativeOpenLoopDriver(args.open_loop_driver) if args.open_loop_driver else None
    kinds = [k for k in KINDS if driver or k != "refused"]
    runs: dict[str, list[Row]] = {kind: [] for kind in kinds}
    for i in range(args.rounds):
        # Alternate the order so that drift falls on every kind alike.
        for kind in kinds if i % 2 == 0 else reversed(kinds):
            row = measure(h2, kind, driver)
            runs[kind].append(row)
            print(
                f"[refusals] {kind:<12} {row.answers / DURATION_S:8,.0f}/s "
                f"{row.per_answer_ms:.3f} ms CPU per answer",
                flush=True,
            )
    medians = [sorted(rs, key=lambda r: r.per_answer_ms)[len(rs) // 2] for rs in runs.values()]
    args.out.write_text(render(medians, args.rounds))
    print(f"[refusals] wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
