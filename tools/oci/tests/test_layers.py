"""Layer split: a code change moves only the app layer; a wheel is one layer everywhere."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

from libs import inventory
from tools.oci.layout import blob_path, manifests

_RUNFILES = Path(os.environ.get("TEST_SRCDIR", "."), "_main")
SERVICES = inventory.load().names()


def _layout(package: str) -> Path:
    return _RUNFILES / package / "image"


def _layers(package: str) -> list[str]:
    """The layer digests of the index's first image (every variant is built alike)."""
    manifest = next(iter(manifests(_layout(package)).values()))
    return [layer["digest"] for layer in manifest["layers"]]


def _external(package: str) -> dict[str, str]:
    """External repo -> the digest of its layer (the layers under app/external/<repo>/)."""
    repos = {}
    for digest in _layers(package):
        blob = blob_path(_layout(package), digest)
        with gzip.open(blob) as raw, tarfile.open(fileobj=raw) as tar:
            tops = {m.name.split("/")[2] for m in tar if m.name.startswith("app/external/")}
        if tops:
            assert len(tops) == 1, f"{package}: one layer holds several repos: {sorted(tops)}"
            repos[tops.pop()] = digest
    return repos


def test_base_external_app_layers() -> None:
    # The base may have several layers of its own, then a layer per external repo, then ours.
    assert len(_layers("services/usersvc")) >= 3
    assert any("grpcio" in repo for repo in _external("services/usersvc"))


def test_code_change_touches_only_the_app_layer() -> None:
    before = _layers("services/usersvc")
    after = _layers("tools/oci/tests/changed_usersvc")
    assert before[:-1] == after[:-1], "interpreter or third-party layer changed with the code"
    assert before[-1] != after[-1]


def test_services_share_the_base_and_each_common_wheel_layer() -> None:
    layers = {svc: _layers(f"services/{svc}") for svc in SERVICES}
    external = {svc: _external(f"services/{svc}") for svc in SERVICES}
    first = SERVICES[0]
    base = [d for d in layers[first] if d not in external[first].values()][:-1]
    shared_repos = set.intersection(*(set(repos) for repos in external.values()))
    assert any("grpcio" in repo for repo in shared_repos), shared_repos
    for svc in SERVICES:
        assert layers[svc][: len(base)] == base, f"{svc}: another base"
        for repo in shared_repos:
            assert external[svc][repo] == external[first][repo], f"{svc}: {repo} differs"
