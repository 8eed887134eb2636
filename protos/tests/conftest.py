"""buf over the contract as the test's runfiles lay it out: buf.yaml at the top, protos/ as
its module, the released image and the seed's protos beside them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.buf.runner import Buf

# Bazel starts a test in the workspace's runfiles directory.
RUNFILES = Path.cwd()


@pytest.fixture
def runfiles() -> Path:
    return RUNFILES


@pytest.fixture
def buf(tmp_path: Path) -> Buf:
    return Buf((RUNFILES / os.environ["BUF"]).resolve(), tmp_path / "buf-cache")


@pytest.fixture
def released_image() -> Path:
    images = sorted((RUNFILES / "protos" / "released").glob("*.json"))
    assert len(images) == 1, f"expected one released contract, found {images}"
    return images[0]


@pytest.fixture
def seed_protos() -> Path:
    return RUNFILES / "tests" / "seed_compat" / "seed_protos"


@pytest.fixture
def workspace_copy(tmp_path: Path) -> Path:
    """A writable copy of buf.yaml and protos/, for changes the contract must refuse."""
    copy = tmp_path / "ws"
    shutil.copytree(RUNFILES / "protos", copy / "protos")
    shutil.copy(RUNFILES / "buf.yaml", copy / "buf.yaml")
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy
