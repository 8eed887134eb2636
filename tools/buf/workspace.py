"""The buf workspace that the contract tests and the release tool run buf in.

The protos import google/api/annotations.proto for their HTTP mapping. buf would fetch it
from the Buf Schema Registry, which needs a buf.lock and a network; Bazel already has it
(googleapis), so the runner lays out a workspace of its own instead: the repository's
buf.yaml with one more module, `google_api/` (//tools/buf:google_api), which lint and
breaking leave alone because it is not ours, and a copy of protos/'s .proto files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

GOOGLE_API = "google_api"
# buf's input for the contract: the protos/ module alone, so that `buf breaking` compares one
# image with the baseline's one, and google_api/ serves only its imports.
CONTRACT = "protos"


def stage(dest: Path, *, buf_yaml: Path, protos: Path, google_api: Path) -> Path:
    """Writes the workspace under `dest` and returns it. The copies are writable, so a test
    may change a .proto file to check what the contract refuses."""
    config: dict[str, Any] = yaml.safe_load(buf_yaml.read_text())
    modules = config.setdefault("modules", [])
    if any(m.get("path") == GOOGLE_API for m in modules):
        raise ValueError(f"{buf_yaml} already has a module at {GOOGLE_API}/")
    modules.append(
        {
            "path": GOOGLE_API,
            "lint": {"ignore": [GOOGLE_API]},
            "breaking": {"ignore": [GOOGLE_API]},
        }
    )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "buf.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for tree, name in ((protos, CONTRACT), (google_api, GOOGLE_API)):
        for source in sorted(tree.rglob("*.proto")):
            target = dest / name / source.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            # copyfile, not copy: runfiles are read-only, the staged files must not be.
            shutil.copyfile(source, target)
    return dest
