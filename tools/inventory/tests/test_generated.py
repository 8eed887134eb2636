"""The generated parts of the tree match services/inventory.bzl, and the generator keeps
everything around them."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from libs import inventory
from libs.inventory import Inventory, Service
from tools.inventory import generated
from tools.pytest.workspace import workspace_root

ROOT = workspace_root("tools/k3d/k3d.sh", __file__)


def test_generated_files_match_the_inventory() -> None:
    stale = generated.stale(ROOT, inventory.load())
    assert not stale, (
        "generated from services/inventory.bzl but out of date: "
        + ", ".join(stale)
        + f"\nfix: {generated.FIX}"
    )


def hand_written(text: str) -> list[str]:
    """The lines of `text` outside its generated regions (the markers included)."""
    kept, inside = [], False
    for line in text.splitlines():
        if generated.BEGIN.match(line):
            kept.append(line)
            inside = True
        elif inside and line.lstrip().startswith(("# END ", "-- END ", "<!-- END ")):
            kept.append(line)
            inside = False
        elif not inside:
            kept.append(line)
    return kept


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of the generated files and the dev keys."""
    for path in generated.PATHS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    shutil.copytree(ROOT / generated.BASE / "secrets", tmp_path / generated.BASE / "secrets")
    keys = generated.BASE + "/service-public-keys"
    shutil.copytree(ROOT / keys, tmp_path / keys)
    return tmp_path


def unused(now: Inventory) -> str:
    """A domain name no service has yet (these tests must pass after a scaffold, too)."""
    return next(f"demo{i}" for i in itertools.count() if f"demo{i}svc" not in now.names())


def test_a_new_service_reaches_every_list_and_nothing_else_changes(tree: Path) -> None:
    now = inventory.load()
    name = unused(now)
    svc = f"{name}svc"
    port = max(s.port for s in now.services) + 1
    grown = Inventory((*now.services, Service(svc, port, f"{name}_db", name, ("usersvc",))))
    before = {p: (tree / p).read_text() for p in generated.PATHS}

    changed = generated.write(tree, grown)

    assert set(changed) == {
        *generated.PATHS,
        f"{generated.BASE}/secrets/{svc}-service-key.dev-only-change-me.pem",
        f"{generated.BASE}/service-public-keys/{svc}.pem",
    }
    assert generated.stale(tree, grown) == []
    for path, old in before.items():
        # Everything outside the generated regions stays as it was written.
        assert hand_written((tree / path).read_text()) == hand_written(old), path
    base = (tree / generated.BASE / "kustomization.yaml").read_text()
    assert f"  - services/{svc}.yaml\n" in base
    assert f"      - {svc}.pem=service-public-keys/{svc}.pem\n" in base
    initdb = (tree / generated.INITDB).read_text()
    assert f"CREATE DATABASE {name}_db OWNER {svc};\n" in initdb
    assert f'set -- "$@" -v {svc}_pw="${svc.upper()}_DB_PASSWORD"\n' in initdb
    k3d = (tree / "tools/k3d/k3d.sh").read_text()
    assert f"SERVICES=({' '.join(grown.names())})\n" in k3d
    assert f" {port})\n" in k3d
    assert f'    "{name}",\n' in (tree / "ruff.toml").read_text()
    # Writing again changes nothing: the generator is idempotent.
    assert generated.write(tree, grown) == []


def test_a_file_without_its_markers_is_reported(tree: Path) -> None:
    (tree / "ruff.toml").write_text("[lint.isort]\nknown-first-party = []\n")
    with pytest.raises(generated.RegionError, match="ruff.toml: no region 'proto packages'"):
        generated.stale(tree, inventory.load())


def test_a_mismatched_dev_public_key_is_stale(tree: Path) -> None:
    public = tree / generated.BASE / generated.public_key("usersvc")
    public.write_bytes((tree / generated.BASE / generated.public_key("authsvc")).read_bytes())
    assert generated.stale(tree, inventory.load()) == [str(public.relative_to(tree))]
