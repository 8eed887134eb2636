"""What both run modes share: the services and their ports, stopping on a signal, the banner.

run.py runs the service binaries as processes; run_containers.py runs their images as the
dev overlay wires them. Both listen on the same ports and print the same lines, so a client
(microctl, a test waiting for "local system is up") cannot tell them apart.
"""

from __future__ import annotations

import argparse
import signal
import threading

SERVICES = (
    # name, database, port offset from --base-port
    ("usersvc", "users_db", 0),
    ("paymentsvc", "payments_db", 1),
    ("authsvc", "auth_db", 2),
)
BANNER = "local system is up (Ctrl-C to stop):"


def add_port_arguments(parser: argparse.ArgumentParser, metrics_note: str = "") -> None:
    """--base-port and --metrics-base-port: both modes listen on the same ports."""
    parser.add_argument(
        "--base-port", type=int, default=50051, help="gRPC port of usersvc; the others follow"
    )
    parser.add_argument(
        "--metrics-base-port",
        type=int,
        default=9091,
        help="metrics port of usersvc; the others follow (0: any free port)" + metrics_note,
    )


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
