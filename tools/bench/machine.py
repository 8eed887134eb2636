"""The machine a runtime bench ran on, for the report's machine table: figures from two
shared cores only mean something next to the CPU, memory and versions that produced them."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import grpc


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "CPUs": str(os.cpu_count()),
        "CPU model": cpu,
        "memory": mem,
        "Python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kernel": platform.release(),
    }
