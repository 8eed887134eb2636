from __future__ import annotations

import hashlib
import importlib
import os
import sys
import tarfile
from pathlib import Path

import pytest

from tools.oci.runfiles_layer import read_manifest, with_byte_code, write_layer


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


def test_links_are_written_and_may_not_leave_the_image(tmp_path: Path) -> None:
    entries = read_manifest("app/svc/svc.runfiles/pip_grpcio\tlink\t../../external/pip_grpcio\n")
    write_layer(entries, str(tmp_path / "l.tar"))
    with tarfile.open(tmp_path / "l.tar") as tar:
        link = tar.getmember("app/svc/svc.runfiles/pip_grpcio")
    assert link.issym() and link.linkname == "../../external/pip_grpcio"
    for target in ("../../../../etc", "/etc"):
        with pytest.raises(ValueError, match="escapes"):
            read_manifest(f"app/svc/svc.runfiles/x\tlink\t{target}\n")


def test_byte_code_is_written_and_used_without_the_sources_mtime(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text("VALUE = 1\n")
    entries = with_byte_code(read_manifest(f"app/pkg/layered_mod.py\tfile\t{src}\n"))
    write_layer(entries, str(tmp_path / "l.tar"))
    root = tmp_path / "root"
    with tarfile.open(tmp_path / "l.tar") as tar:
        tar.extractall(root, filter="tar")
    pyc = f"app/pkg/__pycache__/layered_mod.{sys.implementation.cache_tag}.pyc"
    assert (root / pyc).is_file()
    # An unchecked-hash pyc is used as is: a changed source does not make Python recompile.
    (root / "app/pkg/layered_mod.py").write_text("VALUE = 2\n")
    sys.path.insert(0, str(root / "app/pkg"))
    try:
        module = importlib.import_module("layered_mod")
    finally:
        sys.path.remove(str(root / "app/pkg"))
    assert module.VALUE == 1


def test_byte_code_is_reproducible_and_skips_what_does_not_compile(tmp_path: Path) -> None:
    src = tmp_path / "template.py"
    src.write_text("def {{ name }}(:\n")
    entries = with_byte_code(read_manifest(f"app/t/template.py\tfile\t{src}\n"))
    assert not [rel for rel in entries if rel.endswith(".pyc")]
    good = tmp_path / "good.py"
    good.write_text("x = 1\n")
    one = with_byte_code(read_manifest(f"app/g/good.py\tfile\t{good}\n"))
    os.utime(good, (5, 5))
    two = with_byte_code(read_manifest(f"app/g/good.py\tfile\t{good}\n"))
    assert one == two
