"""buf over the contract: the workspace tools/buf/workspace.py stages from the test's
runfiles (buf.yaml, protos/ and google/api), the released image and the seed's protos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.buf import workspace
from tools.buf.runner import Buf

# Bazel starts a test in the workspace's runfiles directory.
RUNFILES = Path.cwd()


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    """A writable buf workspace of the contract, for checks and for changes it must refuse."""
    return workspace.stage(
        tmp_path / "ws",
        buf_yaml=RUNFILES / "buf.yaml",
        protos=RUNFILES / "protos",
        google_api=RUNFILES / "tools" / "buf" / workspace.GOOGLE_API,
    )


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
