"""The open loop driven by micro_openloop, the C++ driver (clients/cpp/openloop).

Same schedule, deadlines and outcomes as the Python driver (openloop.py), for a fraction of
its CPU per call: on a machine whose cores the servers share with the load, the Python driver
takes so much of them that it measures its own limits above about half the peak. The C++
module builds it (`tools/cpp_build.sh //openloop:micro_openloop`); the bench runs it with
--open-loop-driver, and tools/bench/run.sh does both.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from tools.bench.openloop import (
    DEFAULT_DEADLINE_S,
    OpenPoint,
    OpenWorkerResult,
    combine,
    window_start,
)

CHANNELS = 8  # HTTP/2 connections, as the Python driver's two processes open


class NativeOpenLoopDriver:
    """One micro_openloop process per point, on the same window as the rest of the bench."""

    def __init__(
        self, binary: str | Path, channels: int = CHANNELS, connect_timeout_s: int = 10
    ) -> None:
        self.binary = str(binary)
        self.channels = channels
        self.connect_timeout_s = connect_timeout_s
        self._runs = 0

    def close(self) -> None:
        """Nothing outlives a point."""

    def run(
        self,
        method: str,
        target: str,
        rate: float,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        token: str = "",
        start_at: float | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> OpenPoint:
        start_at = window_start(rate, start_at, warmup_s)
        self._runs += 1
        with tempfile.TemporaryDirectory(prefix="openloop-") as tmp:
            out = Path(tmp) / "result.json"
            argv = [
                self.binary,
                f"--target={target}",
                f"--method={method}",
                f"--rate={rate:.3f}",
                f"--warmup-seconds={warmup_s:g}",
                f"--duration-seconds={duration_s:g}",
                f"--start-at={start_at:.6f}",
                f"--deadline-ms={max(1, round(deadline_s * 1000))}",
                f"--user-id={user_id}",
                f"--key-prefix=olc-{time.time_ns()}-{self._runs}-",
                f"--channels={self.channels}",
                f"--connect-timeout-seconds={self.connect_timeout_s}",
                f"--out={out}",
            ]
            if token:
                argv.append(f"--token={token}")
            # The window, then every call's deadline, then time to connect and write.
            limit = max(0.0, start_at - time.time()) + duration_s + deadline_s + 20
            limit += self.connect_timeout_s
            done = subprocess.run(  # noqa: S603 - the driver the bench was given
                argv, check=False, capture_output=True, text=True, timeout=limit
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"{self.binary} exited with {done.returncode}: {done.stderr.strip()}"
                )
            raw = json.loads(out.read_text(errors="replace"))
        result = OpenWorkerResult(
            sent=raw["sent"],
            ok_ms=raw["ok_ms"],
            shed_ms=raw["shed_ms"],
            errors=Counter(raw["errors"]),
            lag_ms=raw["lag_ms"],
            acked=raw["acked"],
            shed_keys=raw["shed_keys"],
            unknown_keys=raw["unknown_keys"],
            cpu_s=raw["cpu_s"],
            wall_s=raw["wall_s"],
            error_messages=raw["error_messages"],
        )
        return combine([result], rate, duration_s)
