"""Run the whole system as containers: every service's image, as the dev overlay runs them.

    run_containers.py --kustomize DIR [--usersvc-image TAR ...]

Loads the images (`docker load`), starts a throwaway PostgreSQL with each service's role and
database as the manifests name them, renders deploy/kustomize/overlays/dev and runs each
Deployment's container in the local Docker engine on the host network: the images, env,
mounted Secrets, user, read-only root, limits and probes of the manifests, with only the
cluster-only settings rewritten (printed at start; see tools/containers/hostnet.py). gRPC
listens on the ports of the process mode (//tools/local:run): services/inventory.bzl's by
default. Each image tarball is found where Bazel puts it in the runfiles, or at
--<name>-image TAR.
Ctrl-C / SIGTERM stops the containers (docker stop with their grace period), removes them
and the cluster.

Keys: unlike the process mode, which makes fresh keys, this uses the keys in the dev
overlay's Secrets, because they are what the manifests mount. They are committed and public
(deploy/kustomize/base/secrets): fine on your machine, never for anything shared.

Needs a Docker engine the docker CLI reaches; `tools/containers/engine/docker.sh ensure STATE_FILE`
starts one (as root on Debian).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from libs.platform.testing.postgres import PostgresCluster
from tools.containers import database
from tools.containers.docker import Docker
from tools.containers.hostnet import HostNetwork
from tools.containers.system import Containers, Running, load_images, overlay_specs
from tools.local.shared import (
    SERVICES,
    add_port_arguments,
    grpc_ports,
    print_up,
    stop_on_signals,
)

NAMES = tuple(s.name for s in SERVICES)
# tools/local/run_containers.py -> the root of its runfiles tree, where BUILD.bazel's data
# puts every service's image tarball.
RUNFILES = Path(__file__).parent.parent.parent


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name in NAMES:
        parser.add_argument(
            f"--{name}-image",
            type=Path,
            default=RUNFILES / "services" / name / "image_load" / "tarball.tar",
            help=f"{name}'s docker load tarball (default: where Bazel puts it, %(default)s)",
        )
    parser.add_argument(
        "--kustomize", required=True, type=Path, help="deploy/kustomize (its base and overlays/dev)"
    )
    add_port_arguments(
        parser,
        metrics_note=". The manifests say 9090 for every service, which would collide on "
        "one host network.",
    )
    return parser


def _seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else "?"


def _report_failure(docker: Docker, running: dict[str, Running]) -> None:
    for name, r in running.items():
        if not r.report.ready:
            print(f"{name} did not start:", file=sys.stderr)
            for probe in r.report.probes:
                print(f"  {probe}", file=sys.stderr)
            print(docker.logs(r.container)[-4000:], file=sys.stderr)


def _watch(docker: Docker, running: dict[str, Running], stop_requested: threading.Event) -> None:
    """Until a signal, or until a container exits by itself (then say so)."""
    while not stop_requested.wait(1.0):
        for name, r in running.items():
            if not docker.running(r.container):
                exited = docker.exited(r.container)
                print(f"{name} exited with code {exited.code}:", file=sys.stderr)
                print(docker.logs(r.container)[-4000:], file=sys.stderr)
                return


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    docker = Docker()
    why_not = docker.unavailable()
    if why_not is not None:
        print(
            f"{why_not}; start one with tools/containers/engine/docker.sh ensure STATE_FILE",
            file=sys.stderr,
        )
        return 1
    stop = stop_on_signals()

    def metrics_port(offset: int) -> int:
        return args.metrics_base_port + offset if args.metrics_base_port else 0

    grpc = grpc_ports(args.base_port)
    ports = {
        s.name: {"grpc": grpc[s.name], "metrics": metrics_port(offset)}
        for offset, s in enumerate(SERVICES)
    }
    workdir = Path(tempfile.mkdtemp(prefix="micro-containers-"))
    running: dict[str, Running] = {}
    try:
        with PostgresCluster() as cluster, Containers(docker, workdir, "micro-local") as containers:
            host = HostNetwork(ports, {"postgres": f"127.0.0.1:{cluster.port}"})
            specs, rewrites = overlay_specs(args.kustomize, "dev", NAMES, host)
            tarballs = {name: getattr(args, f"{name}_image") for name in NAMES}
            images = load_images(docker, specs, tarballs)
            for spec in specs.values():
                asyncio.run(database.create(cluster.admin_dsn, spec.env_value("DATABASE_URL")))
            running = asyncio.run(containers.start_all(specs, images))
            try:
                if not all(r.report.ready for r in running.values()):
                    _report_failure(docker, running)
                    return 1
                print_up(
                    [
                        f"{s.name:<11} localhost:{ports[s.name]['grpc']}  db={s.database}  "
                        f"container={running[s.name].container}  "
                        f"serving {_seconds(running[s.name].report.first_serving)} after "
                        "docker run"
                        for s in SERVICES
                    ],
                    [
                        ("postgres", cluster.admin_dsn),
                        ("dev keys", "the dev overlay's Secrets (committed, public)"),
                        ("logs", f"docker logs -f {running[NAMES[0]].container} (and the others)"),
                        *(("rewritten", str(r)) for r in rewrites),
                    ],
                )
                _watch(docker, running, stop)
            finally:
                took = containers.stop_all(running)
                for name, seconds in took.items():
                    code = docker.exited(running[name].container).code
                    print(f"{name} stopped in {seconds:.1f}s, exit code {code}", flush=True)
    except Exception as exc:  # noqa: BLE001 - report; the with blocks have cleaned up
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
