from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tools.containers import volumes
from tools.containers.spec import Volume, VolumeFile

KEY = Volume("Secret/k", "/keys", (VolumeFile("key.pem", b"secret"),), mode=0o440)


def test_files_get_the_volume_mode_and_the_fs_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded rather than done, so the test means the same as root and as anyone else.
    chowned: dict[str, int] = {}

    def chown(path: Path, uid: int, gid: int) -> None:
        assert uid == -1, "the owner stays; only the group is the pod's"
        chowned[Path(path).name] = gid

    monkeypatch.setattr(os, "chown", chown)
    mount = volumes.write_volume(KEY, tmp_path / "v", group=65532)
    assert (mount.source, mount.target, mount.read_only) == (tmp_path / "v", "/keys", True)
    assert chowned == {"key.pem": 65532, "v": 65532}
    assert stat.S_IMODE((tmp_path / "v" / "key.pem").stat().st_mode) == 0o440
    assert stat.S_IMODE((tmp_path / "v").stat().st_mode) == 0o750
    assert (tmp_path / "v" / "key.pem").read_bytes() == b"secret"


def test_without_root_the_group_bits_go_to_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError("not root")

    monkeypatch.setattr(os, "chown", refuse)
    volumes.write_volume(KEY, tmp_path / "v", group=65532)
    assert stat.S_IMODE((tmp_path / "v" / "key.pem").stat().st_mode) == 0o444
    assert stat.S_IMODE((tmp_path / "v").stat().st_mode) == 0o755
