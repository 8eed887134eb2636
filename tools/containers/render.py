"""Renders a kustomize overlay into its Kubernetes objects, as the manifest test does.

The renderer is env KUSTOMIZE, else kustomize, else `kubectl kustomize`, each looked for on
PATH and then in Homebrew's bin directories (kustomize_command). The tree is copied first
(symlinks followed) because kustomize refuses files whose symlink target lies outside the
kustomization root, which is every file in a Bazel runfiles tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from libs.platform.testing.programs import HOMEBREW_PREFIXES, find_program, search_dirs


class RenderError(RuntimeError):
    pass


def kustomize_command(
    env: Mapping[str, str] | None = None, prefixes: Sequence[Path] = HOMEBREW_PREFIXES
) -> list[str]:
    """The renderer's argv before the overlay: env KUSTOMIZE, else kustomize, else kubectl.

    kustomize and kubectl are looked for on PATH, then in Homebrew's bin directories
    (libs/platform/testing/programs.py): Bazel's strict test PATH lacks /opt/homebrew/bin.
    A kustomize anywhere beats kubectl, whose built-in kustomize is often older.
    `env` (default os.environ) and `prefixes` are parameters for tests.
    """
    env = os.environ if env is None else env
    explicit = env.get("KUSTOMIZE")
    if explicit:
        return [explicit, "build"]
    kustomize = find_program("kustomize", env, prefixes)
    if kustomize:
        return [str(kustomize), "build"]
    kubectl = find_program("kubectl", env, prefixes)
    if kubectl:
        return [str(kubectl), "kustomize"]
    looked = os.pathsep.join(map(str, search_dirs(env, prefixes))) or "(no directories)"
    raise RenderError(
        "neither kustomize nor kubectl found: install kustomize (macOS: `brew install "
        "kustomize`) or set KUSTOMIZE=/path/to/kustomize (looked in "
        f"{looked})"
    )


def render(kustomize_dir: Path, overlay: str) -> list[dict[str, Any]]:
    """The objects `kustomize build <kustomize_dir>/overlays/<overlay>` produces."""
    with tempfile.TemporaryDirectory(prefix="micro-render-") as tmp:
        # Only what an overlay may refer to: never a checkout's uncommitted prod secrets.
        tree = Path(tmp) / "kustomize"
        shutil.copytree(kustomize_dir / "base", tree / "base")
        shutil.copytree(kustomize_dir / "overlays" / overlay, tree / "overlays" / overlay)
        cmd = [*kustomize_command(), str(tree / "overlays" / overlay)]
        env = {**os.environ, "HOME": os.environ.get("HOME") or tmp}
        # The argv is fixed here: a found tool's path or the KUSTOMIZE path the caller chose.
        result = subprocess.run(  # noqa: S603
            cmd, check=False, capture_output=True, text=True, env=env, timeout=120
        )
    if result.returncode != 0:
        raise RenderError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
