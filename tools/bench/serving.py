"""The bench's empty server (empty_server.py) started for a test: a free port, every
worker's metrics endpoint up, killed afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from libs.platform.testing.launch import wait_healthy
from libs.platform.testing.net import free_port, free_port_block

EMPTY_SERVER = os.environ.get("EMPTY_SERVER", "")


def start(
    workers: str, port: int, metrics_port: int = 0, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKERS": workers,
        "GRPC_PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    return subprocess.Popen(  # noqa: S603 - the empty_server binary from runfiles
        [str(Path(EMPTY_SERVER).resolve())], env=env, stderr=subprocess.PIPE
    )


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[bytes]
    addr: str
    metrics_urls: list[str]


@contextlib.contextmanager
def serving(workers: int, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    # Worker i serves its metrics on METRICS_PORT + i.
    port, metrics_port = free_port(), free_port_block(workers)
    proc = start(str(workers), port, metrics_port, extra_env)
    urls = [f"http://127.0.0.1:{metrics_port + i}/metrics" for i in range(workers)]
    try:
        wait_healthy(f"127.0.0.1:{port}", proc)
        for i in range(workers):
            scrape(metrics_port + i)  # every worker serves before the first measurement
        yield Served(proc, f"127.0.0.1:{port}", urls)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def scrape(port: int) -> str:
    # A worker opens its endpoint once it serves; the other may still be starting.
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text: str = resp.read().decode()
                return text
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
