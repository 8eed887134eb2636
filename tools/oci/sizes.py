"""Sizes of the service images per platform, what a registry stores, and what a change ships.

    tools/bazel run //tools/oci:sizes

Reads the image indexes Bazel built (`<package>/image`, one image per platform): each
layer's size as pushed (compressed, from the manifest) and as unpacked (the tar inside,
counted by decompressing), summed per part of the image (base, the external repos' layers,
the app layer); then the bytes a registry stores for all images together, where a blob
(a base or wheel layer) shared by several images is stored once; then compares usersvc
with tools/oci/tests/changed_usersvc (usersvc plus one changed line of code) to show which
blobs differ: what a registry push or `k3d image import` must move.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tools.oci.layout import blob_path, manifests

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    compressed: int
    unpacked: int
    part: str = ""  # base, external or app (layers only)


def _unpacked_size(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as layer:
        while chunk := layer.read(_CHUNK):
            total += len(chunk)
    return total


def _is_external(path: Path) -> bool:
    """A layer of one external repo: everything in it under app/external/ (tools/oci/defs.bzl)."""
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw) as tar:
        names = [m.name for m in tar]
    return bool(names) and all(n.startswith("app/external") or n == "app" for n in names)


def platforms(layout: Path) -> list[str]:
    """The platforms of the images in an index ("" for a layout of one image without one)."""
    return list(manifests(layout))


def read_image(layout: Path, platform: str = "") -> tuple[Blob, list[Blob]]:
    """(config, layers) of the image of `platform` in an OCI layout (the only one if "")."""
    images = manifests(layout)
    if not platform and len(images) == 1:
        platform = next(iter(images))
    if platform not in images:
        raise ValueError(f"{layout}: no single image for platform {platform!r}: {list(images)}")
    manifest = images[platform]
    config = manifest["config"]
    last = len(manifest["layers"]) - 1
    layers = []
    for i, d in enumerate(manifest["layers"]):
        path = blob_path(layout, d["digest"])
        part = "app" if i == last else "external" if _is_external(path) else "base"
        layers.append(Blob(d["digest"], d["size"], _unpacked_size(path), part))
    return Blob(config["digest"], config["size"], config["size"]), layers


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1_000_000 else f"{size / 1e3:.1f} kB"


def table(images: dict[str, Path]) -> str:
    """Per image and platform: each part's layers, compressed and unpacked sizes."""
    lines = [
        "| image | platform | part | layers | compressed (pushed) | unpacked (tar) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for name, layout in images.items():
        for platform in platforms(layout):
            _, layers = read_image(layout, platform)
            for part in ("base", "external", "app"):
                mine = [b for b in layers if b.part == part]
                lines.append(
                    f"| {name} | {platform} | {part} | {len(mine)} "
                    f"| {_mb(sum(b.compressed for b in mine))} "
                    f"| {_mb(sum(b.unpacked for b in mine))} |"
                )
            lines.append(
                f"| {name} | {platform} | **total** | {len(layers)} "
                f"| **{_mb(sum(b.compressed for b in layers))}** "
                f"| **{_mb(sum(b.unpacked for b in layers))}** |"
            )
    return "\n".join(lines)


def registry(images: dict[str, Path]) -> str:
    """Compressed bytes of all images per platform: summed, and as a registry stores them
    (each distinct blob once)."""
    lines = [
        "| platform | images | sum of the images | a registry stores | shared |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    every = sorted({p for layout in images.values() for p in platforms(layout)})
    for platform in every:
        total, stored = 0, {}
        for layout in images.values():
            config, layers = read_image(layout, platform)
            for blob in [config, *layers]:
                total += blob.compressed
                stored[blob.digest] = blob.compressed
        kept = sum(stored.values())
        lines.append(
            f"| {platform} | {len(images)} | {total:,} B | {kept:,} B | {1 - kept / total:.0%} |"
        )
    return "\n".join(lines)


def changed(before: Path, after: Path, platform: str = "") -> str:
    """The blobs of `after` that `before` does not have: what a code change ships."""
    config_before, layers_before = read_image(before, platform)
    config_after, layers_after = read_image(after, platform)
    known = {b.digest for b in layers_before} | {config_before.digest}
    new = [(b.part, b) for b in layers_after if b.digest not in known]
    if config_after.digest not in known:
        new.append(("config", config_after))
    shipped = sum(b.compressed for _, b in new)
    total = sum(b.compressed for b in layers_after) + config_after.compressed
    parts = ", ".join(f"{label} {b.compressed:,} B" for label, b in new)
    return (
        f"one changed line of usersvc code{f' ({platform})' if platform else ''}: new blobs "
        f"{parts}; {shipped:,} B of {total:,} B ({shipped / total:.2%}), plus the manifest"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--image", action="append", default=[], help="NAME=OCI_LAYOUT_DIR")
    parser.add_argument("--changed", nargs=2, metavar=("BEFORE", "AFTER"), type=Path)
    args = parser.parse_args(argv)
    images = {name: Path(path) for name, path in (i.split("=", 1) for i in args.image)}
    print(table(images))
    print()
    print(registry(images))
    if args.changed:
        print()
        before, after = args.changed
        for platform in platforms(before):
            print(changed(before, after, platform=platform))
    return 0


if __name__ == "__main__":
    sys.exit(main())
