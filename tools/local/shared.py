"""What both run modes share: the services and their ports, stopping on a signal, the banner.

The services are those of services/inventory.bzl, in its order; each listens on its own
port from there unless --base-port puts them on consecutive ports from a base.

run.py runs the service binaries as processes; run_containers.py runs their images as the
dev overlay wires them. Both listen on the same ports and print the same lines, so a client
(microctl, a test waiting for "local system is up") cannot tell them apart.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading

from libs import inventory
from libs.inventory import Service

SERVICES: tuple[Service, ...] = inventory.services()
BANNER = "local system is up (Ctrl-C to stop):"


def add_port_arguments(parser: argparse.ArgumentParser, metrics_note: str = "") -> None:
    """--base-port and --metrics-base-port: both modes listen on the same ports."""
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="gRPC port of the first service, the others following in the inventory's "
        "order (default: each service's port in services/inventory.bzl)",
    )
    parser.add_argument(
        "--metrics-base-port",
        type=int,
        default=9091,
        help="metrics port of the first service; the others follow (0: any free port)"
        + metrics_note,
    )


def check_free(host: str, ports: dict[str, int]) -> None:
    """Fail, naming the port and what wanted it, if any of `ports` is taken on `host`.

    Otherwise a service would exit on its failed bind while the health wait reached
    whatever else holds the port, and the run would report a system that is not there.
    """
    for name, port in ports.items():
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                raise RuntimeError(
                    f"port {port} on {host} (for {name}) is taken: {exc.strerror}; stop what "
                    "holds it, or pass --base-port / --metrics-base-port"
                ) from None


def grpc_ports(base_port: int) -> dict[str, int]:
    """Each service's gRPC port: its inventory port, or base_port + its index."""
    return {s.name: base_port + i if base_port else s.port for i, s in enumerate(SERVICES)}


def stop_on_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (Ctrl-C): the main loop's cue to stop.

    Handled, not raised, so cleanup never starts halfway through starting something.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def print_up(services: list[str], extra: list[tuple[str, str]]) -> None:
    """The banner, one line per service, then (label, value) lines."""
    print(f"\n{BANNER}", flush=True)
    for line in services:
        print(f"  {line}", flush=True)
    for label, value in extra:
        print(f"  {label:<11} {value}", flush=True)
    print(flush=True)
