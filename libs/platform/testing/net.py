"""Loopback addresses for tests: a free port, whether IPv6 loopback exists here, and
callers at other loopback addresses."""

from __future__ import annotations

import asyncio
import secrets
import socket
from pathlib import Path
from typing import Self

# Ports below the kernel's ephemeral range, which bind(0) and every outgoing connection's
# source port draw from. A port picked with bind(0) and released returns to that pool, and
# under parallel tests another process's connection can take it before the server binds it
# (a scaffold check run lost a whole e2e session to that). Below the range only another
# picker like this one can, one chance in thousands.
_LOWEST = 10_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_floor() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, outside the ephemeral range where the
    system has one (another process could still take it before the caller binds, which
    loopback tests accept)."""
    floor = _ephemeral_floor()
    if floor > _LOWEST + 1000:
        for _ in range(100):
            port = _LOWEST + secrets.randbelow(floor - _LOWEST)
            if _bindable(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        picked: int = s.getsockname()[1]
        return picked


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


class SourceAddressProxy:
    """Forwards connections accepted on 127.0.0.1:`port` to `target`, connecting from
    `source` (any 127.x.y.z: Linux routes all of 127/8 to loopback).

    grpc's Python channels cannot choose their source address, so a test that needs callers
    at several addresses (per-address limits) points a channel at one of these instead.
    Hand-written: a byte pipe in each direction over asyncio streams, nothing more.
    """

    def __init__(self, target: tuple[str, int], source: str) -> None:
        self.target = target
        self.source = source
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.target, local_addr=(self.source, 0)
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
