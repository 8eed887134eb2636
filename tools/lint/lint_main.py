"""Lint as a test: ruff on the package's Python files, buildifier on its Starlark files."""

import argparse
import os
import subprocess
import sys
from pathlib import Path


def find_ruff() -> str:
    # The ruff wheel ships its binary as a data script; rules_python puts it under bin/.
    runfiles = Path(os.environ.get("RUNFILES_DIR", Path.cwd().parent))
    for candidate in runfiles.glob("*/bin/ruff"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit(f"ruff binary not found under {runfiles}/*/bin")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buildifier", required=True)
    parser.add_argument("--ruff-config", required=True)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()

    python = [f for f in args.files if f.endswith(".py")]
    starlark = [f for f in args.files if not f.endswith(".py")]
    failed = False
    if python:
        ruff = find_ruff()
        for cmd in (
            [ruff, "check", "--no-cache", "--config", args.ruff_config, *python],
            [ruff, "format", "--check", "--no-cache", "--config", args.ruff_config, *python],
        ):
            failed |= subprocess.run(cmd, check=False).returncode != 0  # noqa: S603 -- our own tools
    if starlark:
        cmd = [args.buildifier, "-mode=check", "-lint=warn", "-v", *starlark]
        failed |= subprocess.run(cmd, check=False).returncode != 0  # noqa: S603 -- our own tools
    print(
        f"lint: {len(python)} Python and {len(starlark)} Starlark files, {'FAILED' if failed else 'clean'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
