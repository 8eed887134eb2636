"""Writes OCI image layouts and docker-load tarballs for the offline rules_oci stand-in.

`image`: base layout (optional) + tar layers + config -> OCI layout directory.
`index`: OCI layouts of single images -> one layout indexing them by platform.
`load`:  OCI layout -> tarball that both `docker load` and OCI tools accept.

Everything is reproducible: gzip without name or timestamp, sorted JSON, fixed creation
time, so the same inputs give the same digests on every machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"
_CHUNK = 1 << 20


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"

    def put(self, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.blobs / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    def read(self, digest: str) -> bytes:
        return (self.blobs / digest.split(":", 1)[1]).read_bytes()

    def manifest(self) -> dict[str, Any]:
        index = json.loads((self.root / "index.json").read_text())
        return json.loads(self.read(index["manifests"][0]["digest"]))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def add_layer(layout: Layout, tar: Path, tmp: Path) -> tuple[dict[str, Any], str]:
    """Stores a layer gzip-compressed; returns its descriptor and diff_id."""
    with tar.open("rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    if compressed:
        with gzip.open(tar, "rb") as f:
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        diff_id = "sha256:" + h.hexdigest()
        gz = tar
    else:
        diff_id = _hash_file(tar)
        gz = tmp
        # mtime=0 and no file name in the header: the compressed bytes depend only on
        # the tar's bytes.
        with (
            tar.open("rb") as src,
            gz.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=6) as dst,
        ):
            shutil.copyfileobj(src, dst, _CHUNK)
    digest = _hash_file(gz)
    layout.blobs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gz, layout.blobs / digest.split(":", 1)[1])
    if gz == tmp:
        tmp.unlink()
    return {
        "mediaType": LAYER_GZIP,
        "digest": digest,
        "size": os.path.getsize(layout.blobs / digest.split(":", 1)[1]),
    }, diff_id


def build_image(out: Path, base: Path | None, tars: list[Path], settings: dict[str, Any]) -> None:
    layout = Layout(out)
    layers: list[dict[str, Any]] = []
    if base is not None:
        base_layout = Layout(base)
        base_manifest = base_layout.manifest()
        config = json.loads(base_layout.read(base_manifest["config"]["digest"]))
        for layer in base_manifest["layers"]:
            layout.blobs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(
                base_layout.blobs / layer["digest"].split(":", 1)[1],
                layout.blobs / layer["digest"].split(":", 1)[1],
            )
            layers.append(layer)
    else:
        config = {"rootfs": {"type": "layers", "diff_ids": []}, "config": {}, "history": []}
    config["created"] = EPOCH
    # Like rules_oci: the platform is the base's unless set.
    config["os"] = settings["os"] or config.get("os") or "linux"
    config["architecture"] = settings["architecture"] or config.get("architecture") or "amd64"
    if settings["variant"]:
        config["variant"] = settings["variant"]
    run = config.setdefault("config", {})
    for i, tar in enumerate(tars):
        desc, diff_id = add_layer(layout, tar, out / f".layer{i}.tmp")
        layers.append(desc)
        config["rootfs"]["diff_ids"].append(diff_id)
        config.setdefault("history", []).append(
            {"created": EPOCH, "created_by": f"oci_image layer {tar.name}"}
        )
    if settings["env"]:
        env = dict(item.split("=", 1) for item in run.get("Env") or [])
        env.update(settings["env"])
        run["Env"] = [f"{k}={v}" for k, v in env.items()]
    if settings["entrypoint"]:
        run["Entrypoint"] = settings["entrypoint"]
        run.pop("Cmd", None)  # a base image's Cmd is meant for its own entrypoint
    if settings["cmd"]:
        run["Cmd"] = settings["cmd"]
    if settings["workdir"]:
        run["WorkingDir"] = settings["workdir"]
    if settings["user"]:
        run["User"] = settings["user"]
    if settings["labels"]:
        run["Labels"] = {**(run.get("Labels") or {}), **settings["labels"]}
    for key, field in (("exposed_ports", "ExposedPorts"), ("volumes", "Volumes")):
        if settings[key]:
            run[field] = {
                **(run.get(field) or {}),
                **{p if "/" in p or key == "volumes" else p + "/tcp": {} for p in settings[key]},
            }
    config_desc = {"mediaType": CONFIG, **layout.put(_dumps(config))}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc,
        "layers": layers,
    }
    if settings["annotations"]:
        manifest["annotations"] = settings["annotations"]
    _write_index(out, [{"mediaType": MANIFEST, **layout.put(_dumps(manifest))}])


def _write_index(out: Path, manifests: list[dict[str, Any]]) -> None:
    """The layout's oci-layout marker and its index.json listing `manifests`."""
    (out / "oci-layout").write_bytes(_dumps({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(
        _dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }
        )
    )


def build_index(out: Path, images: list[Path]) -> None:
    """One layout whose index lists each image's manifest with the platform of its config."""
    layout = Layout(out)
    manifests = []
    for image in images:
        source = Layout(image)
        for entry in json.loads((image / "index.json").read_text())["manifests"]:
            manifest = json.loads(source.read(entry["digest"]))
            config = json.loads(source.read(manifest["config"]["digest"]))
            for blob in [entry, manifest["config"], *manifest["layers"]]:
                name = blob["digest"].split(":", 1)[1]
                layout.blobs.mkdir(parents=True, exist_ok=True)
                if not (layout.blobs / name).exists():
                    shutil.copyfile(source.blobs / name, layout.blobs / name)
            platform = {"architecture": config["architecture"], "os": config["os"]}
            if config.get("variant"):
                platform["variant"] = config["variant"]
            manifests.append({**entry, "platform": platform})
    _write_index(out, manifests)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_tarball(image: Path, out: Path, tags: list[str]) -> None:
    """docker-load's format (manifest.json) with the OCI layout's files alongside."""
    layout = Layout(image)
    manifest = layout.manifest()
    index = json.loads((image / "index.json").read_text())
    if tags:
        index["manifests"][0].setdefault("annotations", {})["org.opencontainers.image.ref.name"] = (
            tags[0]
        )
    docker = [
        {
            "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1],
            "RepoTags": tags,
            "Layers": [
                "blobs/sha256/" + layer["digest"].split(":", 1)[1] for layer in manifest["layers"]
            ],
        }
    ]
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", (image / "oci-layout").read_bytes())
        _add_bytes(tar, "index.json", _dumps(index))
        _add_bytes(tar, "manifest.json", _dumps(docker))
        for blob in sorted(layout.blobs.iterdir()):
            # Not gettarinfo: inputs may be symlinks (sandbox), and the tar wants contents.
            info = tarfile.TarInfo(f"blobs/sha256/{blob.name}")
            info.size = blob.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with blob.open("rb") as f:
                tar.addfile(info, f)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    img = sub.add_parser("image")
    img.add_argument("--out", type=Path, required=True)
    img.add_argument("--config", type=Path, required=True)
    img.add_argument("--base", type=Path)
    img.add_argument("--tar", type=Path, action="append", default=[])
    load = sub.add_parser("load")
    load.add_argument("--image", type=Path, required=True)
    load.add_argument("--out", type=Path, required=True)
    load.add_argument("--tag", action="append", default=[])
    index = sub.add_parser("index")
    index.add_argument("--out", type=Path, required=True)
    index.add_argument("--image", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    if args.cmd == "image":
        args.out.mkdir(parents=True, exist_ok=True)
        build_image(args.out, args.base, args.tar, json.loads(args.config.read_text()))
    elif args.cmd == "index":
        args.out.mkdir(parents=True, exist_ok=True)
        build_index(args.out, args.image)
    else:
        write_tarball(args.image, args.out, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
