"""Renders a kustomize overlay into its Kubernetes objects, as the manifest test does.

The renderer is env KUSTOMIZE, else kustomize on PATH, else `kubectl kustomize`. The tree is
copied first (symlinks followed) because kustomize refuses files whose symlink target lies
outside the kustomization root, which is every file in a Bazel runfiles tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml


class RenderError(RuntimeError):
    pass


def kustomize_command() -> list[str]:
    explicit = os.environ.get("KUSTOMIZE")
    if explicit:
        return [explicit, "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise RenderError(
        "neither kustomize nor kubectl found: install kustomize (or set KUSTOMIZE=/path/to/it)"
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
        # The argv is fixed here: a known tool name or the KUSTOMIZE path the caller chose.
        result = subprocess.run(  # noqa: S603
            cmd, check=False, capture_output=True, text=True, env=env, timeout=120
        )
    if result.returncode != 0:
        raise RenderError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
