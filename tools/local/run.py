"""Run the whole system locally: a throwaway PostgreSQL plus the three service binaries.

    run.py --usersvc PATH --paymentsvc PATH --authsvc PATH

Ctrl-C / SIGTERM stops every child and the cluster. Service code is never imported: the
services run as separate processes, exactly as deployed.

Auth is on, as in production: fresh development keys are generated at start in a temporary
directory (authsvc's token signing key; a service key each for authsvc, paymentsvc and
usersvc; each callee trusts the public halves of its own callers only, as the manifests
wire them) and removed on exit.
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

from libs.platform.testing.launch import (
    binary_command,
    public_pem,
    wait_healthy,
    write_private_key,
)
from libs.platform.testing.postgres import PostgresCluster, create_database
from tools.local.shared import SERVICES, add_port_arguments, print_up, stop_on_signals

# Services that call other services, and so sign service tokens with their own key.
CALLERS = ("authsvc", "paymentsvc", "usersvc")
# Whom each callee trusts (TRUSTED_SERVICE_KEYS, a directory of <caller>.pem): its callers
# only, so no service trusts itself. usersvc: VerifyCredentials (authsvc), the user reads
# (paymentsvc); authsvc: RevokeUserSessions (usersvc).
TRUSTED_CALLERS = {
    "usersvc": ("authsvc", "paymentsvc"),
    "authsvc": ("usersvc",),
}


def dev_keys(directory: Path) -> dict[str, dict[str, str]]:
    """Generate throwaway keys; return the extra environment of each service."""

    env: dict[str, dict[str, str]] = {name: {} for name, _, _ in SERVICES}
    public: dict[str, bytes] = {}
    for name in CALLERS:
        key = write_private_key(directory / f"{name}.key")
        public[name] = public_pem(key)
        env[name]["SERVICE_KEY_FILE"] = str(directory / f"{name}.key")
    for callee, callers in TRUSTED_CALLERS.items():
        trusted = directory / f"trusted-by-{callee}"
        trusted.mkdir()
        for name in callers:
            (trusted / f"{name}.pem").write_bytes(public[name])
        env[callee]["TRUSTED_SERVICE_KEYS"] = str(trusted)
    write_private_key(directory / "signing.key")
    env["authsvc"]["AUTH_SIGNING_KEY_FILE"] = str(directory / "signing.key")
    return env


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
    for name, _, _ in SERVICES:
        parser.add_argument(f"--{name}", required=True, help=f"path to the {name} binary")
    parser.add_argument("--log-level", default="INFO")
    add_port_arguments(parser)
    args = parser.parse_args(argv)
    ports = {name: args.base_port + offset for name, _, offset in SERVICES}

    # With WORKERS=N each service's worker i serves METRICS_PORT + i (libs/platform/runner.py),
    # so the services' metrics ports are spaced N apart.
    raw_workers = os.environ.get("WORKERS", "").strip()
    workers = int(raw_workers) if raw_workers.isdigit() and int(raw_workers) > 0 else 1

    def metrics_port(offset: int) -> int:
        return args.metrics_base_port + offset * workers if args.metrics_base_port else 0

    stop = stop_on_signals()

    procs: list[subprocess.Popen[bytes]] = []
    with PostgresCluster() as cluster, tempfile.TemporaryDirectory(prefix="micro-keys-") as kd:
        try:
            keys_env = dev_keys(Path(kd))
            urls = {
                db: asyncio.run(create_database(cluster.admin_dsn, db)) for _, db, _ in SERVICES
            }
            for name, db, offset in SERVICES:
                env = {
                    **os.environ,
                    "DATABASE_URL": urls[db],
                    "GRPC_PORT": str(ports[name]),
                    # One metrics port each: the default 9090 would collide.
                    "METRICS_PORT": str(metrics_port(offset)),
                    "LOG_LEVEL": args.log_level,
                    "USERSVC_ADDR": f"127.0.0.1:{ports['usersvc']}",
                    "AUTHSVC_ADDR": f"127.0.0.1:{ports['authsvc']}",
                    **keys_env[name],
                }
                procs.append(subprocess.Popen(binary_command(getattr(args, name)), env=env))  # noqa: S603
            for (name, _, _), proc in zip(SERVICES, procs, strict=True):
                wait_healthy(f"127.0.0.1:{ports[name]}", proc)
            print_up(
                [f"{name:<11} localhost:{ports[name]}  db={db}" for name, db, _ in SERVICES],
                [("postgres", cluster.admin_dsn), ("dev keys", f"{kd} (deleted on exit)")],
            )
            while not stop.wait(0.5):
                for (name, _, _), proc in zip(SERVICES, procs, strict=True):
                    if proc.poll() is not None:
                        print(f"{name} exited with code {proc.returncode}", file=sys.stderr)
                        stop.set()
        except Exception as exc:  # noqa: BLE001 - report and clean up, never leave children
            print(f"run failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stop_all(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
