"""Layer sizes of the service images, and what a code change ships, as a Markdown table.

    tools/bazel run //tools/oci:sizes

Reads the OCI layouts Bazel built (`<package>/image`): each layer's size as pushed
(compressed, from the manifest) and as unpacked (the tar inside, counted by decompressing),
then compares usersvc with tools/oci/tests/changed_usersvc (usersvc plus one changed line of
code) to show which blobs differ: what a registry push or `k3d image import` must move.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path

LAYER_NAMES = ("base", "external", "app")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    compressed: int
    unpacked: int


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def _unpacked_size(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as layer:
        while chunk := layer.read(_CHUNK):
            total += len(chunk)
    return total


def read_image(layout: Path) -> tuple[Blob, list[Blob]]:
    """(config, layers) of the single image in an OCI layout."""
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads(_blob_path(layout, entry["digest"]).read_text())
    config = manifest["config"]
    layers = [
        Blob(d["digest"], d["size"], _unpacked_size(_blob_path(layout, d["digest"])))
        for d in manifest["layers"]
    ]
    return Blob(config["digest"], config["size"], config["size"]), layers


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1_000_000 else f"{size / 1e3:.1f} kB"


def _names(layers: list[Blob]) -> list[str]:
    # The base may have several layers of its own; ours are the last two (tools/oci/defs.bzl).
    base = len(layers) - 2
    return [f"base {i + 1}" if base > 1 else "base" for i in range(base)] + ["external", "app"]


def table(images: dict[str, Path]) -> str:
    read = {name: read_image(layout) for name, layout in images.items()}
    lines = [
        "| image | layer | compressed (pushed) | unpacked (tar) | digest |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for name, (_, layers) in read.items():
        for label, blob in zip(_names(layers), layers, strict=True):
            lines.append(
                f"| {name} | {label} | {_mb(blob.compressed)} | {_mb(blob.unpacked)} "
                f"| `{blob.digest[7:19]}` |"
            )
        lines.append(
            f"| {name} | **total** | **{_mb(sum(b.compressed for b in layers))}** "
            f"| **{_mb(sum(b.unpacked for b in layers))}** | |"
        )
    return "\n".join(lines)


def changed(before: Path, after: Path) -> str:
    """The blobs of `after` that `before` does not have: what a code change ships."""
    config_before, layers_before = read_image(before)
    config_after, layers_after = read_image(after)
    known = {b.digest for b in layers_before} | {config_before.digest}
    new = [
        (label, blob)
        for label, blob in zip(_names(layers_after), layers_after, strict=True)
        if blob.digest not in known
    ]
    if config_after.digest not in known:
        new.append(("config", config_after))
    shipped = sum(b.compressed for _, b in new)
    total = sum(b.compressed for b in layers_after) + config_after.compressed
    parts = ", ".join(f"{label} {b.compressed:,} B" for label, b in new)
    return (
        f"one changed line of usersvc code: new blobs {parts}; {shipped:,} B of "
        f"{total:,} B ({shipped / total:.2%}), plus the manifest"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--image", action="append", default=[], help="NAME=OCI_LAYOUT_DIR")
    parser.add_argument("--changed", nargs=2, metavar=("BEFORE", "AFTER"), type=Path)
    args = parser.parse_args(argv)
    images = dict(item.split("=", 1) for item in args.image)
    print(table({name: Path(path) for name, path in images.items()}))
    if args.changed:
        print()
        print(changed(*args.changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
