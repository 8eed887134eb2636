"""Reading the OCI image layouts Bazel builds: index.json, then blobs by digest.

One reader for the size tool and the image tests, whether the layout holds one image or an
index of one image per platform (tools/oci/defs.bzl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def manifests(layout: Path) -> dict[str, dict[str, Any]]:
    """Each image's manifest by its platform ("os/architecture"; "" for an entry without
    one), in the index's order."""
    out: dict[str, dict[str, Any]] = {}
    for entry in json.loads((layout / "index.json").read_text())["manifests"]:
        p = entry.get("platform")
        platform = f"{p['os']}/{p['architecture']}" if p else ""
        out[platform] = json.loads(blob_path(layout, entry["digest"]).read_text())
    return out
