"""Loopback addresses for tests: a free port, and whether IPv6 loopback exists here."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; another process could still
    take it before the caller binds, which loopback tests accept)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ipv6_loopback() -> bool:
    """Whether ::1 can be bound: containers and CI runners without IPv6 have none."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port_block(size: int) -> int:
    """The first of `size` consecutive TCP ports free on 127.0.0.1 right now (same caveat
    as free_port), for a runner that puts its services on consecutive ports."""
    for _ in range(50):
        base = free_port()
        if base + size > 65536:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {size} consecutive free ports on 127.0.0.1")
