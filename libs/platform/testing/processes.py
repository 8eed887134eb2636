"""Run a service's real entry point as a child process and read its JSON log lines.

Under Bazel the binary comes from `MICRO_<SERVICE>_BIN` (set to `$(rootpath ...)` in the
test's env); elsewhere `python -m services.<service>.main` from the source tree is used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any


def service_command(service: str) -> list[str]:
    binary = os.environ.get(f"MICRO_{service.upper()}_BIN")
    if binary:
        return [os.path.abspath(binary)]
    return [sys.executable, "-m", f"services.{service}.main"]


class ServiceProcess:
    def __init__(self, service: str, env: Mapping[str, str]) -> None:
        self.service = service
        self.env = {**os.environ, "GRPC_HOST": "127.0.0.1", "METRICS_PORT": "0", **env}
        self.records: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()

    @property
    def proc(self) -> subprocess.Popen[str]:
        assert self._proc is not None, "not started"
        return self._proc

    def start(self) -> ServiceProcess:
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary
            service_command(self.service),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._changed:
                self.raw.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    self.records.append(record)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_log(self, msg: str, timeout: float = 60) -> dict[str, Any]:
        """The first log record with this message; fails early if the process exits."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self.records:
                    if record.get("msg") == msg:
                        return record
                if self.proc.poll() is not None and not self._reader_alive():
                    raise AssertionError(
                        f"{self.service} exited ({self.proc.returncode}) before logging "
                        f"{msg!r}:\n{''.join(self.raw[-30:])}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.service} did not log {msg!r} in {timeout}s")
                self._changed.wait(min(left, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def wait_serving(self, timeout: float = 60) -> int:
        """Block until the gRPC port is bound; returns it."""
        return int(self.wait_for_log("grpc server listening", timeout)["port"])

    def metrics_port(self, timeout: float = 10) -> int:
        return int(self.wait_for_log("metrics listening", timeout)["port"])

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def messages(self) -> list[str]:
        with self._changed:
            return [str(r.get("msg")) for r in self.records]

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
