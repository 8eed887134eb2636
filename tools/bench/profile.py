"""py-spy sampling of the service processes while the bench drives them.

py-spy is optional (not a Bazel dependency): pass --py-spy PATH or put it on PATH
(`pip install py-spy`). Without it the report says how to get the profile.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Where time goes, by the first frame of a stack that matches (checked in order).
CATEGORIES = (
    ("logging (JSON log line per call)", ("logging/", "libs/platform/logs.py")),
    ("token verification (PyJWT, Ed25519)", ("jwt/", "libs/platform/auth/", "cryptography")),
    ("password hashing (argon2)", ("argon2",)),
    ("asyncpg (queries, pool)", ("asyncpg/",)),
    ("outgoing gRPC calls (clients)", ("libs/platform/clients.py",)),
    ("protobuf", ("google/protobuf",)),
    ("observability interceptor (log line, metrics)", ("libs/platform/observability.py",)),
    ("grpc.aio server / event loop", ("grpc/", "asyncio/", "uvloop")),
)


@dataclass(frozen=True)
class Profile:
    name: str
    samples: int
    top_self: list[tuple[str, float]]
    categories: list[tuple[str, float]]


def record(py_spy: str, pid: int, seconds: float) -> subprocess.Popen[bytes]:
    out = Path(tempfile.mkdtemp(prefix="micro-pyspy-")) / "stacks.txt"
    proc = subprocess.Popen(  # noqa: S603 - our own argv
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",  # the py_binary launcher runs the service as a child
            "--nonblocking",  # never pause the service: sample without stopping it
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(max(1, round(seconds))),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    proc.output = out  # type: ignore[attr-defined]
    return proc


def summarize(name: str, stacks: str, top: int = 12) -> Profile:
    """Collapsed stacks (`frame;frame;frame count`) -> self-time leaders and categories."""
    self_time: Counter[str] = Counter()
    category: Counter[str] = Counter()
    total = 0
    for line in stacks.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        # --subprocesses puts a "process N:<cmdline>" frame at the root of every stack.
        frames = [f for f in stack.split(";") if not f.startswith("process ")] or ["(idle)"]
        total += count
        self_time[_short(frames[-1])] += count
        category[_category(frames)] += count
    if total == 0:
        return Profile(name, 0, [], [])
    return Profile(
        name,
        total,
        [(frame, n / total) for frame, n in self_time.most_common(top)],
        [(cat, n / total) for cat, n in category.most_common()],
    )


def _short(frame: str) -> str:
    # "func (/long/path/site-packages/pkg/mod.py:123)" -> "func (pkg/mod.py:123)"
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "_main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{func} ({where})" if where else func


def _category(frames: list[str]) -> str:
    # The innermost frame that belongs to a known category decides: a JSON dump inside
    # logging counts as logging, not as the event loop that called the handler.
    for frame in reversed(frames):
        for label, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return label
    return "other (handlers, Python runtime)"


def collect(name: str, proc: subprocess.Popen[bytes]) -> Profile | str:
    _, err = proc.communicate(timeout=120)
    out: Path = proc.output  # type: ignore[attr-defined]
    if proc.returncode != 0 or not out.exists():
        return f"py-spy failed for {name}: {err.decode(errors='replace')[-500:]}"
    return summarize(name, out.read_text())
