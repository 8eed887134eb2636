"""Finding the workspace's files from a test, under Bazel or with plain pytest."""

from __future__ import annotations

import os
from pathlib import Path


def workspace_root(marker: str, test_file: str) -> Path:
    """The directory that holds `marker` (a path relative to the workspace root).

    MICRO_REPO_ROOT wins; under Bazel it is the runfiles tree; otherwise the first parent
    of `test_file` holding MODULE.bazel or the marker.
    """
    env_root = os.environ.get("MICRO_REPO_ROOT")
    if env_root:
        return Path(env_root)
    srcdir, workspace = os.environ.get("TEST_SRCDIR"), os.environ.get("TEST_WORKSPACE")
    if srcdir and workspace and (Path(srcdir) / workspace / marker).exists():
        return Path(srcdir) / workspace
    # Not resolve(): under Bazel the file is a symlink into the source tree, and the data
    # files sit next to the link in runfiles, not next to its target.
    here = Path(test_file).absolute()
    for parent in here.parents:
        if (parent / "MODULE.bazel").is_file() or (parent / marker).exists():
            return parent
    raise RuntimeError(f"no repository root (MODULE.bazel or {marker}) above {here}")
