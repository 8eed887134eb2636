"""The size tables and the changed-blob summary, on small OCI layouts made here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tools.oci.sizes import changed, read_image, registry, table


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layout(path: Path, images: dict[str, tuple[list[bytes], bytes]]) -> Path:
    """An index of one image per platform; each image: (layer tars, config)."""
    entries = []
    for platform, (layers, config) in images.items():
        # mtime=0 keeps equal content byte-identical, as Bazel's layers are.
        blobs = [_blob(path, gzip.compress(tar, mtime=0)) for tar in layers]
        manifest = {"config": _blob(path, config), "layers": blobs}
        os_, arch = platform.split("/")
        entries.append(
            {
                **_blob(path, json.dumps(manifest).encode()),
                "platform": {"os": os_, "architecture": arch},
            }
        )
    (path / "index.json").write_text(json.dumps({"manifests": entries}))
    return path


BASE = _tar({"usr/bin/python3": b"b" * 5000})
GRPC = _tar({"app/external/grpcio/grpc.py": b"g" * 3000})
JWT = _tar({"app/external/pyjwt/jwt.py": b"j" * 2000})


def _code(text: bytes) -> bytes:
    return _tar({"app/svc/main.py": text})


def test_parts_are_named_and_sized_per_platform(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path / "a",
        {
            "linux/amd64": ([BASE, GRPC, JWT, _code(b"v1")], b"{}"),
            "linux/arm64": ([BASE, GRPC, _code(b"v1")], b"{ }"),
        },
    )
    config, layers = read_image(layout, "linux/amd64")
    assert config.compressed == 2
    assert [b.part for b in layers] == ["base", "external", "external", "app"]
    assert layers[0].unpacked == len(BASE)
    text = table({"svc": layout})
    assert "| svc | linux/amd64 | external | 2 |" in text
    assert "| svc | linux/arm64 | external | 1 |" in text


def test_a_registry_stores_a_shared_layer_once(tmp_path: Path) -> None:
    one = _layout(tmp_path / "one", {"linux/amd64": ([BASE, GRPC, _code(b"one")], b"{1}")})
    two = _layout(tmp_path / "two", {"linux/amd64": ([BASE, GRPC, _code(b"two")], b"{2}")})
    _, layers = read_image(one, "linux/amd64")
    shared = layers[0].compressed + layers[1].compressed
    cells = [c.strip() for c in registry({"one": one, "two": two}).splitlines()[-1].split("|")]
    total, stored = (int(c.removesuffix(" B").replace(",", "")) for c in cells[3:5])
    assert total - stored == shared


def test_only_the_changed_layer_and_config_are_new(tmp_path: Path) -> None:
    before = _layout(tmp_path / "a", {"linux/amd64": ([BASE, GRPC, _code(b"v1")], b'{"v": 1}')})
    after = _layout(tmp_path / "b", {"linux/amd64": ([BASE, GRPC, _code(b"v2")], b'{"v": 2}')})
    _, layers = read_image(after, "linux/amd64")
    summary = changed(before, after, "linux/amd64")
    assert f"app {layers[-1].compressed:,} B" in summary
    assert "config 8 B" in summary
    assert "base" not in summary and "external" not in summary
