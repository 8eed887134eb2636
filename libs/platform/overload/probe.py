"""How long a new call waits before any Python code sees it, measured by calling ourselves.

grpc.aio accepts one call from gRPC's core per event-loop turn; when the process is short of
CPU, new calls queue inside the core, out of every handler's sight. Every `interval` the
probe sends one call to a method nobody serves, over a listener of this process only (an
abstract Unix socket with a random name, so with WORKERS each process probes itself); gRPC
answers UNIMPLEMENTED after the call waited its turn in the same queue as every other, and
the round trip goes to QueueGate.probe() (queue.py). An unserved method costs no handler, log
line or metric, and the probe's calls are never shed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import grpc

PROBE_METHOD = "/micro.overload.Probe/Wait"
# A probe that waits this long counts as waiting this long: the limit has shrunk by then.
PROBE_TIMEOUT_S = 1.0


def probe_address() -> str:
    return f"unix-abstract:micro-probe-{uuid.uuid4().hex}"


def is_probe_peer(peer: str | None) -> bool:
    """Whether a call came through a probe listener (only the probe may use it). The
    services listen on TCP only, and gRPC names every Unix-socket peer "unix:..."."""
    return peer is not None and peer.startswith("unix:")


class QueueProbe:
    def __init__(
        self,
        record: Callable[[float, float], None],
        address: str,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._record = record  # (latency, now)
        self.address = address
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="overload-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self.address) as channel:
            # No serializers: bytes in, bytes out.
            wait: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(PROBE_METHOD)
            while True:
                start = self._clock()
                with contextlib.suppress(grpc.aio.AioRpcError):  # UNIMPLEMENTED: the answer
                    await wait(b"", timeout=PROBE_TIMEOUT_S)
                now = self._clock()
                self._record(now - start, now)
                await asyncio.sleep(self._interval)
