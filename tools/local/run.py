"""Run the whole system locally: a throwaway PostgreSQL plus every service's binary.

    run.py [--usersvc PATH ...] [--base-port PORT]

The services are those of services/inventory.bzl; each binary is found where Bazel puts it
in the runfiles (services/<name>/<name>), or at --<name> PATH. Ctrl-C / SIGTERM stops every
child and the cluster. Service code is never imported: the services run as separate
processes, exactly as deployed.

Auth is on, as in production: fresh development keys are generated at start in a temporary
directory (authsvc's token signing key; a service key for each service that calls another;
each callee trusts the public halves of its own callers only, the inventory's `calls`, as
the manifests wire them: libs/platform/testing/topology.py) and removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from libs import inventory
from libs.platform.testing.launch import binary_command, wait_healthy
from libs.platform.testing.postgres import PostgresCluster, create_database
from libs.platform.testing.topology import wiring
from tools.local.shared import (
    SERVICES,
    add_port_arguments,
    check_free,
    grpc_ports,
    print_up,
    stop_on_signals,
)

# tools/local/run.py -> the root of the runfiles tree it runs from, where BUILD.bazel's
# data puts every service's binary.
RUNFILES = Path(__file__).parent.parent.parent


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for s in SERVICES:
        parser.add_argument(
            f"--{s.name}",
            default=str(RUNFILES / "services" / s.name / s.name),
            help=f"path to the {s.name} binary (default: where Bazel puts it, %(default)s)",
        )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="where the services listen (default: loopback only; 0.0.0.0 or [::] for every "
        "interface)",
    )
    add_port_arguments(parser)
    args = parser.parse_args(argv)
    ports = grpc_ports(args.base_port)
    addresses = {s.name: f"127.0.0.1:{ports[s.name]}" for s in SERVICES}

    # With WORKERS=N each service's worker i serves METRICS_PORT + i (libs/platform/runner.py),
    # so the services' metrics ports are spaced N apart.
    raw_workers = os.environ.get("WORKERS", "").strip()
    workers = int(raw_workers) if raw_workers.isdigit() and int(raw_workers) > 0 else 1

    def metrics_port(offset: int) -> int:
        return args.metrics_base_port + offset * workers if args.metrics_base_port else 0

    wanted = {f"{s.name} gRPC": ports[s.name] for s in SERVICES}
    for offset, s in enumerate(SERVICES):
        first = metrics_port(offset)
        for worker in range(workers):
            wanted[f"{s.name} metrics (worker {worker})"] = first + worker if first else 0
    try:
        check_free(args.host.strip("[]"), wanted)
    except RuntimeError as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1

    stop = stop_on_signals()

    procs: list[subprocess.Popen[bytes]] = []
    with PostgresCluster() as cluster, tempfile.TemporaryDirectory(prefix="micro-keys-") as kd:
        try:
            # Production's wiring (keys, trust, addresses), from the inventory.
            wired = wiring(inventory.load(), Path(kd), addresses)
            urls = {
                s.name: asyncio.run(create_database(cluster.admin_dsn, s.database))
                for s in SERVICES
            }
            for offset, s in enumerate(SERVICES):
                env = {
                    **os.environ,
                    "DATABASE_URL": urls[s.name],
                    "GRPC_HOST": args.host,
                    "GRPC_PORT": str(ports[s.name]),
                    # One metrics port each: the default 9090 would collide.
                    "METRICS_PORT": str(metrics_port(offset)),
                    "LOG_LEVEL": args.log_level,
                    **wired[s.name],
                }
                binary = binary_command(getattr(args, s.name))
                procs.append(subprocess.Popen(binary, env=env))  # noqa: S603
            for s, proc in zip(SERVICES, procs, strict=True):
                wait_healthy(f"127.0.0.1:{ports[s.name]}", proc)
            print_up(
                [f"{s.name:<11} localhost:{ports[s.name]}  db={s.database}" for s in SERVICES],
                [("postgres", cluster.admin_dsn), ("dev keys", f"{kd} (deleted on exit)")],
            )
            while not stop.wait(0.5):
                for s, proc in zip(SERVICES, procs, strict=True):
                    if proc.poll() is not None:
                        print(f"{s.name} exited with code {proc.returncode}", file=sys.stderr)
                        stop.set()
        except Exception as exc:  # noqa: BLE001 - report and clean up, never leave children
            print(f"run failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stop_all(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
