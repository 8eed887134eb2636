"""The run commands' port check: a taken port fails the run, naming the port and its user."""

from __future__ import annotations

import socket

import pytest

from tools.local.shared import check_free


def test_a_taken_port_is_named() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError) as info:
            check_free("127.0.0.1", {"usersvc gRPC": port})
    assert f"port {port} on 127.0.0.1 (for usersvc gRPC) is taken" in str(info.value)


def test_free_ports_and_unset_ones_pass() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_free("127.0.0.1", {"usersvc gRPC": port, "usersvc metrics": 0})
