from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from tools.oci.runfiles_layer import read_manifest, write_layer


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(root: Path, mtime: int, exec_mode: int) -> dict[str, str | None]:
    root.mkdir()
    (root / "lib.py").write_text("x = 1\n")
    (root / "launcher").write_text("#!/bin/sh\n")
    os.chmod(root / "launcher", exec_mode)
    for f in root.iterdir():
        os.utime(f, (mtime, mtime))
    text = (
        f"app/svc/svc\tfile\t{root / 'launcher'}\n"
        f"app/svc/svc.runfiles/_main/pkg/lib.py\tfile\t{root / 'lib.py'}\n"
        "app/svc/svc.runfiles/_main/pkg/__init__.py\tempty\t\n"
    )
    return read_manifest(text)


def test_same_content_same_bytes_whatever_the_mtimes(tmp_path: Path) -> None:
    write_layer(_sources(tmp_path / "a", 1_000, 0o755), str(tmp_path / "a.tar"))
    write_layer(_sources(tmp_path / "b", 2_000_000_000, 0o700), str(tmp_path / "b.tar"))
    assert _digest(tmp_path / "a.tar") == _digest(tmp_path / "b.tar")


def test_entries_sorted_with_parents_root_owned(tmp_path: Path) -> None:
    write_layer(_sources(tmp_path / "a", 1, 0o755), str(tmp_path / "a.tar"))
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "app/svc/svc.runfiles/_main/pkg" in names
    assert all((m.uid, m.gid, m.mtime) == (0, 0, 0) for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["app/svc/svc"] == 0o755
    assert modes["app/svc/svc.runfiles/_main/pkg/lib.py"] == 0o644


def test_rejects_paths_outside_the_root() -> None:
    with pytest.raises(ValueError, match="escapes"):
        read_manifest("../../etc/passwd\tempty\t\n")
