"""Layer split: a change to the workspace's own code leaves the other layers' digests alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

from libs import inventory

_RUNFILES = Path(os.environ.get("TEST_SRCDIR", "."), "_main")


def _layers(package: str) -> list[str]:
    layout = _RUNFILES / package / "image"
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return [layer["digest"] for layer in manifest["layers"]]


def test_base_external_app_layers() -> None:
    # The base may have several layers of its own; ours are the last two.
    assert len(_layers("services/usersvc")) >= 3


def test_code_change_touches_only_the_app_layer() -> None:
    before = _layers("services/usersvc")
    after = _layers("tools/oci/tests/changed_usersvc")
    assert before[:-1] == after[:-1], "interpreter or third-party layer changed with the code"
    assert before[-1] != after[-1]


def test_services_share_the_interpreter_layers() -> None:
    base = _layers("services/usersvc")[:-2]
    for svc in inventory.load().names():
        assert _layers(f"services/{svc}")[:-2] == base, svc
