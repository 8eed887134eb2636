"""Every package of the workspace runs its checks: a BUILD file beside Python, shell or
Starlark sources calls lint_test() (or a macro that does), and one beside Python also calls
typecheck_test() (or py_service, which does).

The checks are a line per BUILD file, not aspects: rules_lint and rules_mypy are not among
the rule sets the offline build world has (tools/offline). This test is what makes that line
mandatory: a new package without it fails `bazel test //...`.

It reads the source tree itself, found through a runfile's symlink, because the set of
packages is exactly what no Bazel input lists; its target is tagged `external` so that it
runs every time instead of being cached against inputs that do not change when a package
is added. Local execution only: a remote executor has no source tree to walk.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Macros that declare the package's lint_test, or typecheck_test, themselves.
LINTS = re.compile(r"^\s*(lint_test|proto_package)\(", re.MULTILINE)
TYPECHECKS = re.compile(r"^\s*(typecheck_test|py_service)\(", re.MULTILINE)
# Another workspace starts here (the C++ client's module, the offline stand-in modules):
# its packages answer to its own checks.
WORKSPACE_MARKERS = ("MODULE.bazel", "REPO.bazel", "WORKSPACE", "WORKSPACE.bazel")


def source_root() -> Path:
    module = Path(os.environ["TEST_SRCDIR"]) / os.environ["TEST_WORKSPACE"] / "MODULE.bazel"
    return module.resolve().parent


def packages(root: Path) -> list[Path]:
    """Directories under `root` with a BUILD.bazel, in this workspace."""
    found = []
    for here, dirs, files in os.walk(root):
        path = Path(here)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith((".", "bazel-"))
            and not any((path / d / m).exists() for m in WORKSPACE_MARKERS)
        )
        if "BUILD.bazel" in files:
            found.append(path)
    return found


def own_files(package: Path) -> list[Path]:
    """The package's files, its subdirectories included, down to the next package."""
    out = []
    for here, dirs, files in os.walk(package):
        path = Path(here)
        dirs[:] = [d for d in dirs if not (path / d / "BUILD.bazel").exists()]
        # An empty __init__.py marks a namespace (libs/, services/): nothing to check.
        out += [path / f for f in files if f != "__init__.py" or (path / f).stat().st_size]
    return out


def missing_checks(root: Path) -> list[str]:
    problems = []
    for package in packages(root):
        build = (package / "BUILD.bazel").read_text()
        files = own_files(package)
        label = "//" + package.relative_to(root).as_posix()
        if any(f.suffix in (".py", ".sh", ".bzl") for f in files) and not LINTS.search(build):
            problems.append(f"{label}: has sources but no lint_test()")
        if any(f.suffix == ".py" for f in files) and not TYPECHECKS.search(build):
            problems.append(f"{label}: has Python but no typecheck_test()")
    return problems


def test_every_package_runs_its_checks() -> None:
    root = source_root()
    assert (root / "services").is_dir(), f"{root} is not the source tree"
    assert len(packages(root)) > 20, "the walk found too few packages to be the workspace"
    assert missing_checks(root) == []


def test_a_package_without_its_checks_is_found(tmp_path: Path) -> None:
    (tmp_path / "MODULE.bazel").write_text("")
    good, bare, other = tmp_path / "good", tmp_path / "bare", tmp_path / "other_module"
    for d in (good, bare / "sub", other):
        d.mkdir(parents=True)
    (good / "BUILD.bazel").write_text("lint_test()\ntypecheck_test(deps = [])\n")
    (good / "x.py").write_text("")
    (bare / "BUILD.bazel").write_text("")
    (bare / "sub" / "tool.sh").write_text("")  # no BUILD of its own: the package's
    (other / "MODULE.bazel").write_text("")
    (other / "BUILD.bazel").write_text("")
    (other / "y.py").write_text("")
    assert missing_checks(tmp_path) == ["//bare: has sources but no lint_test()"]
