"""Runs the buf binary that //tools/buf selects, for tests and tools."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


@dataclass(frozen=True)
class Buf:
    binary: Path
    # buf caches modules it downloads; ours has none, but it still wants a writable place.
    cache_dir: Path

    def __call__(self, *args: str, cwd: Path) -> Result:
        done = subprocess.run(  # noqa: S603 - our own binary, our own arguments
            [str(self.binary), *args],
            check=False,
            cwd=cwd,
            env={**os.environ, "BUF_CACHE_DIR": str(self.cache_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Result(done.returncode, done.stdout + done.stderr)
