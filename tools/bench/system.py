"""The system under test: a throwaway PostgreSQL, the services, the empty server and
the two-hop chain (the empty server's binary in its CHAIN_TO role, calling the empty
server), each a separate process started from its Bazel binary, as tools/local/run.py does."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from libs import inventory
from libs.platform.testing.launch import binary_command, wait_healthy
from libs.platform.testing.postgres import PostgresCluster, create_database
from libs.platform.testing.topology import wiring

# Every service of services/inventory.bzl gets its database (the bench starts those it
# measures), then the empty server and the two-hop chain: ports 50151, 50152, ... in that order.
DATABASES = {s.name: s.database for s in inventory.services()}
SERVERS = (*DATABASES, "empty", "chain")
PORTS = {name: 50151 + i for i, name in enumerate(SERVERS)}
# Fixed, so the h2load driver can read each worker's call counters: worker i of a server
# serves /metrics on its METRICS_PORT + i, hence a block of MAX_WORKERS ports per server.
MAX_WORKERS = 16
METRICS_PORTS = {name: 50200 + MAX_WORKERS * i for i, name in enumerate(SERVERS)}


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and all its descendants (launchers fork the service)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        # fields[1] is ppid; utime, stime are fields 14 and 15 of stat (index 11, 12 here).
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
    return total


def wait_answering(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http URL
                return
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer (exit code {proc.poll()})") from exc
            time.sleep(0.1)


@dataclass
class System:
    binaries: dict[str, str]  # usersvc, paymentsvc, authsvc, empty, chain -> path
    log_level: str = "INFO"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cluster: PostgresCluster | None = None
    urls: dict[str, str] = field(default_factory=dict)
    tmp: Path | None = None
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    durable: bool = True

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{PORTS[name]}"

    def start_database(self) -> None:
        self.cluster = PostgresCluster(durable=self.durable).start()
        for svc, db in DATABASES.items():
            self.urls[svc] = asyncio.run(create_database(self.cluster.admin_dsn, db))

    def environments(self) -> None:
        """Per-server settings: the services wired as in production (their keys, each
        trusting exactly its callers: libs/platform/testing/topology.py); the empty server
        verifies like usersvc, with usersvc's trust, and the chain calls it as paymentsvc
        does, with paymentsvc's key."""
        self.tmp = Path(tempfile.mkdtemp(prefix="micro-bench-"))
        keys = self.tmp / "keys"
        keys.mkdir()
        wired = wiring(inventory.load(), keys, {svc: self.addr(svc) for svc in DATABASES})
        common = {
            "LOG_LEVEL": self.log_level,
            "GRPC_HOST": "127.0.0.1",
            # The whole load is one bench user's, so the per-user limits (calls in flight,
            # libs/platform/auth/verification.py; payments per second, paymentsvc) would
            # measure themselves, not the services.
            "USER_MAX_IN_FLIGHT": "0",
            "PAYMENTS_PER_SECOND": "0",
        }
        for svc in DATABASES:
            self.env[svc] = {
                **common,
                **wired[svc],
                "DATABASE_URL": self.urls[svc],
                "GRPC_PORT": str(PORTS[svc]),
                "METRICS_PORT": str(METRICS_PORTS[svc]),
            }
        as_usersvc = {k: v for k, v in wired["usersvc"].items() if k != "SERVICE_KEY_FILE"}
        self.env["empty"] = {
            **common,
            **as_usersvc,
            "GRPC_PORT": str(PORTS["empty"]),
            "METRICS_PORT": str(METRICS_PORTS["empty"]),
        }
        self.env["chain"] = {
            **common,
            **wired["paymentsvc"],
            "GRPC_PORT": str(PORTS["chain"]),
            "METRICS_PORT": str(METRICS_PORTS["chain"]),
            "CHAIN_TO": self.addr("empty"),
        }

    def start(self, name: str, workers: int = 1) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"{name}: WORKERS={workers}; the bench runs 1 to {MAX_WORKERS}")
        env = {**os.environ, **self.env[name], "WORKERS": str(workers)}
        proc = subprocess.Popen(binary_command(self.binaries[name]), env=env)  # noqa: S603
        self.procs[name] = proc
        self.workers[name] = workers
        wait_healthy(self.addr(name), proc)
        # Health answered from one worker; a worker opens its /metrics once it serves, so
        # this waits for all of them (and the h2load driver needs every one's counts).
        for url in self.metrics_urls(name):
            wait_answering(url, proc)

    def restart(self, name: str, workers: int) -> None:
        self._stop(self.procs.pop(name))
        self.start(name, workers)

    def metrics_urls(self, name: str) -> list[str]:
        base = METRICS_PORTS[name]
        return [f"http://127.0.0.1:{base + i}/metrics" for i in range(self.workers[name])]

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            self._stop(proc)
        self.procs.clear()
        if self.cluster is not None:
            self.cluster.stop()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
