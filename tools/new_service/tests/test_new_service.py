"""The scaffold on a copy of the files it edits: what it writes, and what it refuses."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from libs import inventory
from libs.inventory import parse
from tools.inventory import generated
from tools.new_service import new_service
from tools.pytest.workspace import workspace_root

ROOT = workspace_root("services/inventory.bzl", __file__)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for path in (*generated.PATHS, new_service.INVENTORY_FILE):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    for keys in ("secrets", "service-public-keys"):
        shutil.copytree(ROOT / generated.BASE / keys, tmp_path / generated.BASE / keys)
    return tmp_path


def services_in(bzl: Path) -> dict[str, Any]:
    """SERVICES of an inventory.bzl: a Starlark dict literal is a Python one too."""
    scope: dict[str, Any] = {}
    exec(bzl.read_text(), scope)  # noqa: S102 - our own inventory file
    return scope["SERVICES"]


def unused() -> str:
    """A domain name no service has yet (these tests must pass after a scaffold, too)."""
    names = inventory.load().names()
    return next(f"demo{i}" for i in itertools.count() if f"demo{i}svc" not in names)


def test_a_new_service_gets_every_file_and_an_inventory_entry(tree: Path) -> None:
    before = inventory.load()
    name = unused()
    svc = f"{name}svc"
    entry, touched = new_service.scaffold(tree, name)

    assert (entry.name, entry.database, entry.proto, entry.calls) == (svc, f"{name}_db", name, ())
    assert entry.port == max(s.port for s in before.services) + 1
    listed = services_in(tree / new_service.INVENTORY_FILE)
    assert list(listed) == [*before.names(), svc], "existing entries keep their order"
    assert parse(listed).get(svc) == entry
    for path in (
        f"protos/{name}/v1/{name}.proto",
        f"protos/{name}/v1/BUILD.bazel",
        f"services/{svc}/BUILD.bazel",
        f"services/{svc}/app.py",
        f"services/{svc}/migrations/0001_init.sql",
        f"services/{svc}/tests/test_{name}_api.py",
        f"deploy/kustomize/base/services/{svc}.yaml",
        f"deploy/kustomize/overlays/prod/patches/{svc}.yaml",
    ):
        assert path in touched and (tree / path).is_file(), path
    proto = (tree / f"protos/{name}/v1/{name}.proto").read_text()
    assert f"package {name}.v1;" in proto
    assert f"service {name.capitalize()}Service {{" in proto
    assert "rpc CreateItem(CreateItemRequest) returns (CreateItemResponse) {" in proto
    assert f'post: "/v1/{name}/items"' in proto, "a public RPC comes with its HTTP mapping"
    manifest = (tree / f"deploy/kustomize/base/services/{svc}.yaml").read_text()
    assert f"containerPort: {entry.port}" in manifest
    assert f"postgres.micro.svc:5432/{name}_db" in manifest
    assert f"authsvc.micro.svc:{before.get('authsvc').port}" in manifest
    tokens = ("__SERVICE__", "__PROTO__", "__Proto__", "__PORT__", "__DATABASE__", "__AUTHSVC")
    for path in touched:
        assert not any(token in path or token in (tree / path).read_text() for token in tokens)
    # The inventory's generated parts now include it, and nothing is stale.
    assert generated.stale(tree, parse(listed)) == []
    base = (tree / generated.BASE / "kustomization.yaml").read_text()
    assert f"  - services/{svc}.yaml\n" in base


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("usersvc", "already in services/inventory.bzl"),
        ("user", "already in services/inventory.bzl"),
        ("json", "would shadow a Python module"),
        ("grpc", "would shadow a Python module"),
        ("class", "would shadow a Python module"),
        ("Ledger-2", "lower-case letters and digits"),
        ("l", "lower-case letters and digits"),
    ],
)
def test_unusable_names_are_refused_and_nothing_is_written(tree: Path, name: str, why: str) -> None:
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    with pytest.raises(new_service.ScaffoldError, match=why):
        new_service.scaffold(tree, name)
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_a_name_whose_directory_exists_is_refused(tree: Path) -> None:
    name = unused()
    (tree / f"protos/{name}").mkdir(parents=True)
    with pytest.raises(new_service.ScaffoldError, match="already there, nothing written"):
        new_service.scaffold(tree, name)
    assert f"{name}svc" not in (tree / new_service.INVENTORY_FILE).read_text()
