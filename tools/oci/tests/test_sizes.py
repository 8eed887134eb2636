"""The size table and the changed-blob summary, on small OCI layouts made here."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from tools.oci.sizes import changed, read_image, table


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layout(path: Path, layers: list[bytes], config: bytes) -> Path:
    # mtime=0 keeps equal content byte-identical, as Bazel's layers are.
    blobs = [_blob(path, gzip.compress(tar, mtime=0)) for tar in layers]
    manifest = {"config": _blob(path, config), "layers": blobs}
    index = {"manifests": [_blob(path, json.dumps(manifest).encode())]}
    (path / "index.json").write_text(json.dumps(index))
    return path


def test_sizes_are_read_compressed_and_unpacked(tmp_path: Path) -> None:
    layout = _layout(tmp_path / "a", [b"b" * 5000, b"e" * 3000, b"a" * 100], b"{}")
    config, layers = read_image(layout)
    assert config.compressed == 2
    assert [b.unpacked for b in layers] == [5000, 3000, 100]
    assert all(b.compressed < b.unpacked for b in layers[:2])
    text = table({"svc": layout})
    assert "| svc | base |" in text and "| svc | app |" in text and "**total**" in text


def test_only_the_changed_layer_and_config_are_new(tmp_path: Path) -> None:
    before = _layout(tmp_path / "a", [b"base", b"wheels", b"code v1"], b'{"v": 1}')
    after = _layout(tmp_path / "b", [b"base", b"wheels", b"code v2"], b'{"v": 2}')
    _, layers = read_image(after)
    summary = changed(before, after)
    assert f"app {layers[-1].compressed:,} B" in summary
    assert "config 8 B" in summary
    assert "base" not in summary and "external" not in summary
