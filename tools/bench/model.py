"""What a runtime bench run records (Row, Run), which driver sends each method's load
(Drivers), and what every step needs once the system is up (Session): the bench's steps,
its report and //tools/bench:ab share these, so they live apart from all three."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from tools.bench import h2load, profile
from tools.bench.h2load import H2Load
from tools.bench.load import ClosedLoopDriver, LoadGenerator, PointResult
from tools.bench.system import System

CHAIN = "two-hop chain"
# Services a server calls on every request: their CPU counts towards its "server CPU".
CALLS_PER_REQUEST = {"paymentsvc": ("usersvc",), "chain": ("empty",)}


@dataclass(frozen=True)
class Row:
    series: str  # e.g. "GetUser", "empty handler", "pgbench SELECT"
    workers: int
    concurrency: int
    result: PointResult
    server_cpu: float | None  # CPU cores the server processes used on average


@dataclass
class Drivers:
    """h2load for the methods it can send, when chosen; the Python client for the rest."""

    c_client: H2Load | None
    python: LoadGenerator | None  # None when nothing needs it

    def for_method(self, method: str) -> ClosedLoopDriver:
        if self.c_client is not None and method in h2load.SERVICES:
            return self.c_client
        if self.python is None:
            raise RuntimeError(f"no load generator started for {method}")
        return self.python

    def close(self) -> None:
        if self.python is not None:
            self.python.close()


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    profiles: list[profile.Profile | str] = field(default_factory=list)
    auth_enforced: bool = False
    notes: list[str] = field(default_factory=list)
    h2load_version: str = ""  # empty: the Python client produced every series
    workers: int = 1  # WORKERS of the main series
    open_notes: list[str] = field(default_factory=list)

    def series(self, name: str, workers: int | None = None) -> list[Row]:
        workers = self.workers if workers is None else workers
        return [r for r in self.rows if r.series == name and r.workers == workers]


def peak(rows: list[Row]) -> Row | None:
    return max(rows, key=lambda r: r.result.rate, default=None)


@dataclass(frozen=True)
class Session:
    """The system up and the bench user seeded: every step's points go to the same run,
    servers and drivers, as the same user."""

    run: Run
    system: System
    drivers: Drivers
    args: argparse.Namespace
    user_id: str
    token: str
