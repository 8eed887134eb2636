from __future__ import annotations

import pytest

from tools.containers.objects import Rendered
from tools.containers.render import render
from tools.pytest.workspace import workspace_root


@pytest.fixture(scope="session")
def dev() -> Rendered:
    """The dev overlay as kustomize renders it from this checkout (or the runfiles)."""
    root = workspace_root("deploy/kustomize", __file__) / "deploy/kustomize"
    return Rendered(tuple(render(root, "dev")))
