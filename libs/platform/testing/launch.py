"""Starting the services as separate processes: commands, throwaway keys, health waits.

Shared by the local runner (tools/local) and the benchmark (tools/bench), which both run
the real binaries exactly as deployed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc


def binary_command(path: str) -> list[str]:
    """Bazel py_binary launchers are executable; a bare .py file runs with this Python."""
    if path.endswith(".py"):
        return [sys.executable, path]
    return [str(Path(path).resolve())]


def write_private_key(path: Path) -> Ed25519PrivateKey:
    """A fresh Ed25519 key as PKCS#8 PEM, readable by its owner only."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def wait_healthy(addr: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Block until `addr` reports SERVING; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(addr) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{addr}: process exited with code {proc.returncode}")
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"{addr} did not become healthy within {timeout}s")
