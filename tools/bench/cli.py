"""The runtime bench's command line (tools/bench/run.sh passes its arguments on): every flag
and default in one place, apart from the steps that read them; //tools/bench:ab takes the
binaries' flags (BINARIES) and the level lists (parse_levels) from here too."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from tools.bench import openloop, overload

BINARIES = ("usersvc", "paymentsvc", "authsvc", "empty")  # --NAME PATH, from the BUILD file


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    for name in BINARIES:
        parser.add_argument(f"--{name}", required=True, help=f"path to the {name} binary")
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    parser.add_argument("--out", type=Path, default=Path(workspace) / "BENCHMARKS.md")
    parser.add_argument("--concurrency", default="1,4,8,16,32,64")
    # Login hashes the password with argon2 at production cost (tens of ms of CPU per call,
    # hundreds under load), so it gets its own, lower levels and a longer window.
    parser.add_argument("--login-concurrency", default="1,2,4")
    parser.add_argument("--login-duration", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per point")
    parser.add_argument(
        "--load",
        choices=("h2load", "python"),
        help="load generator for the empty handler, GetUser and CreatePayment (Login always "
        "uses the Python client); default: h2load when it is on PATH, else python",
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes of the Python client"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="WORKERS (server processes sharing the port) of usersvc, paymentsvc and the "
        "empty server in the main series; 2 uses both cores of this machine",
    )
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=1,
        help="also run GetUser/CreatePayment/empty with WORKERS=N at the two highest levels "
        "(0: skip)",
    )
    parser.add_argument(
        "--open-loop",
        default="0.2,0.4,0.6,0.8,1.0,1.2,1.5,2.0",
        help="open-loop offered loads, as shares of each method's closed-loop peak ('' skips)",
    )
    parser.add_argument("--open-loop-duration", type=float, default=5.0)
    parser.add_argument("--open-loop-warmup", type=float, default=1.0)
    parser.add_argument(
        "--open-loop-compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="repeat every open-loop share in each --open-loop-arm",
    )
    parser.add_argument(
        "--open-loop-arm",
        action="append",
        type=overload.parse_arm,
        default=None,
        metavar="NAME:KEY=VALUE,...",
        help="an arm of the open loop: every share again with these settings on the services "
        "involved; repeatable (default: "
        + "; ".join(
            f"'{name}:" + ",".join(f"{k}={v}" for k, v in settings.items()) + "'"
            for name, settings in overload.DEFAULT_ARMS
        )
        + ")",
    )
    parser.add_argument(
        "--open-loop-sample-share",
        type=float,
        default=1.0,
        help="share of the open-loop calls the Python driver offers (h2load the rest). 1, "
        "the default, starts every call's deadline at its scheduled time, which a stream "
        "bound needs (h2load starts it when a call leaves its queue); below 1 the servers "
        "keep more of the cores",
    )
    parser.add_argument(
        "--open-loop-driver",
        type=Path,
        default=None,
        metavar="MICRO_OPENLOOP",
        help="the C++ open-loop driver (tools/cpp_build.sh //openloop:micro_openloop prints "
        "its path), in place of the Python one: a fraction of its CPU per call, so the servers "
        "keep the cores (tools/bench/run.sh builds it and passes it)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=openloop.DEFAULT_DEADLINE_S,
        help="every open-loop call's gRPC deadline, seconds: goodput counts OK answers within it",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=Path(workspace) / "tools/bench/results/openloop.png",
        help="where the open-loop plot goes (linked from --out)",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every server (services and empty servers), e.g. "
        "OVERLOAD_QUEUE_SHEDDING=false for an A/B; repeatable",
    )
    parser.add_argument("--py-spy", default=os.environ.get("PY_SPY") or shutil.which("py-spy"))
    parser.add_argument("--log-level", default="INFO", help="the services' LOG_LEVEL")
    parser.add_argument(
        "--durable",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL flushes every commit to disk, as in production (--no-durable: the "
        "test clusters' fsync=off, synchronous_commit=off)",
    )
    return parser.parse_args(argv)


def parse_levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]
