"""Rewrite what is generated from services/inventory.bzl: `tools/bazel run //tools/inventory:sync`.

The kustomize entries, the postgres init, tools/k3d/k3d.sh's list and ruff's first-party list
(tools/inventory/generated.py), and a dev key pair for each service that calls another.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from libs import inventory
from tools.inventory import generated


def main() -> int:
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        print("run me with `tools/bazel run //tools/inventory:sync`", file=sys.stderr)
        return 2
    try:
        changed = generated.write(Path(workspace), inventory.load())
    except (generated.RegionError, inventory.InventoryError) as exc:
        print(f"sync: {exc}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"updated {path}")
    if not changed:
        print("everything generated from services/inventory.bzl is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
