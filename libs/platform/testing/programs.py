"""Finding the host programs the test helpers run (initdb, kustomize, ...): PATH, then Homebrew.

Bazel runs tests with --incompatible_strict_action_env, so their PATH is a fixed
/bin:/usr/bin:/usr/local/bin whatever the caller's shell says. Homebrew on Apple silicon
installs into /opt/homebrew/bin, which that PATH lacks, so `brew install kustomize` alone
would not be enough; looking in Homebrew's prefixes as well makes it so. (/usr/local is
Homebrew's prefix on Intel Macs: already on that PATH, but not on every caller's.)

No dependencies beyond the standard library: tools/ uses this too (:programs in BUILD.bazel).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

# Homebrew's prefixes: Apple silicon first, then Intel (both exist on a Mac that also runs
# Intel Homebrew under Rosetta; the native one is the better guess).
HOMEBREW_PREFIXES: tuple[Path, ...] = (Path("/opt/homebrew"), Path("/usr/local"))


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def search_dirs(
    env: Mapping[str, str] | None = None, prefixes: Sequence[Path] = HOMEBREW_PREFIXES
) -> list[Path]:
    """PATH's directories in order, then each prefix's bin, each directory once.

    `env` defaults to os.environ; tests pass their own, and their own `prefixes`, so the
    real /opt/homebrew never decides a test.
    """
    env = os.environ if env is None else env
    dirs: list[Path] = []
    for entry in [*env.get("PATH", "").split(os.pathsep), *(str(p / "bin") for p in prefixes)]:
        # An empty PATH entry means the working directory, which is no place to find tools.
        if entry and Path(entry) not in dirs:
            dirs.append(Path(entry))
    return dirs


def find_program(
    name: str, env: Mapping[str, str] | None = None, prefixes: Sequence[Path] = HOMEBREW_PREFIXES
) -> Path | None:
    """The first executable `name` in search_dirs(env, prefixes), or None."""
    for directory in search_dirs(env, prefixes):
        if is_executable(directory / name):
            return directory / name
    return None


def versioned_dirs(pattern: str, roots: Sequence[Path], subdir: str = "bin") -> list[Path]:
    """`<root>/<match>/<subdir>` for every match of `pattern` (a glob), highest version first.

    The version is the dot-separated numbers of the match's name after its first `@` (of
    the whole name without one): `postgresql@17` -> (17,), `16` -> (16,), `postgresql@9.6` ->
    (9, 6). Equal versions keep the order of `roots`.
    """
    found = [
        match / subdir
        for root in roots
        for match in sorted(root.glob(pattern))
        if (match / subdir).is_dir()
    ]
    # sorted() is stable also with reverse=True, so equal versions keep `roots`' order.
    return sorted(found, key=lambda d: _version(d.parent.name), reverse=True)


def _version(name: str) -> tuple[int, ...]:
    ver = name.split("@", 1)[1] if "@" in name else name
    return tuple(int(part) for part in ver.split(".") if part.isdigit())


def module_program(variable: str, module: str, script: str) -> str:
    """A program of another Bazel module of the repository (clients/cpp, gateway) whose path
    a test takes from `variable`.

    Such a module is a Bazel workspace of its own, so this one cannot name its programs as
    data: `script` builds them there and passes their paths. A test run any other way fails
    here with that command, not later with a missing file.
    """
    import pytest  # only the tests that call this have pytest; tools/ must not need it

    path = os.environ.get(variable, "")
    if not is_executable(Path(path)):
        pytest.fail(
            f"{variable}={path!r} is not a built program of {module}; run this test "
            f"through {script}, which builds it there and passes its path",
            pytrace=False,
        )
    return path


def cpp_program(variable: str) -> str:
    """A program of the C++ module (clients/cpp), built by tools/cpp_client_test.sh."""
    return module_program(variable, "clients/cpp", "tools/cpp_client_test.sh")
