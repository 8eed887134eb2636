"""Scaffold a working service: `tools/bazel run //tools/new_service -- NAME`.

NAME is the domain in lower case (`ledger`); the service is NAME + "svc" (`ledgersvc`).
Writes its protos (protos/NAME/v1: package NAME.v1, service <Name>Service with one method,
CreateItem), the service (handler, store, migration, config, BUILD via py_service, tests),
its manifests, and its entry in services/inventory.bzl (the next free port, database
NAME_db, calling no one); then regenerates what the inventory drives
(tools/inventory/generated.py). Right after it, `tools/bazel test //...` passes and
`tools/bazel run //tools/local:run` serves the new service too.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from libs import inventory
from libs.inventory import Inventory, Service
from tools.inventory import generated

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")
INVENTORY_FILE = "services/inventory.bzl"
# Top-level Python packages a proto package must not shadow: ours and our dependencies'.
TAKEN = frozenset(
    {
        "libs",
        "services",
        "tools",
        "tests",
        "protos",
        "google",
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "grpc_status",
        "jwt",
        "yaml",
        "pytest",
        "asyncpg",
        "argon2",
        "cryptography",
        "opentelemetry",
        "prometheus_client",
    }
)


class ScaffoldError(Exception):
    """The name is unusable or taken; nothing was written."""


@dataclass(frozen=True)
class Names:
    proto: str  # ledger: protos/ledger/v1, package ledger.v1
    service: str  # ledgersvc

    @property
    def tokens(self) -> dict[str, str]:
        return {
            "__SERVICE__": self.service,
            "__PROTO__": self.proto,
            "__Proto__": self.proto.capitalize(),
        }


def names_for(raw: str) -> Names:
    proto = raw.strip().lower().removesuffix("svc")
    if not NAME.match(proto):
        raise ScaffoldError(
            f"{raw!r}: a name is 2 to 31 lower-case letters and digits, starting with a "
            "letter (e.g. `ledger`, which makes ledgersvc)"
        )
    if keyword.iskeyword(proto) or proto in sys.stdlib_module_names or proto in TAKEN:
        raise ScaffoldError(f"{proto!r} would shadow a Python module of that name; pick another")
    return Names(proto=proto, service=proto + "svc")


def new_entry(inv: Inventory, names: Names) -> Service:
    if names.service in inv.names():
        raise ScaffoldError(f"{names.service} is already in {INVENTORY_FILE}")
    if names.proto in {s.proto for s in inv.services}:
        raise ScaffoldError(f"protos/{names.proto} already belongs to another service")
    port = max(s.port for s in inv.services) + 1
    return Service(names.service, port, f"{names.proto}_db", names.proto, ())


def inventory_text(text: str, entry: Service) -> str:
    """services/inventory.bzl with `entry` added as the last service."""
    lines = text.splitlines(keepends=True)
    start = lines.index("SERVICES = {\n")
    end = lines.index("}\n", start)
    block = [
        f'    "{entry.name}": {{\n',
        f'        "port": {entry.port},\n',
        f'        "database": "{entry.database}",\n',
        f'        "proto": "{entry.proto}",\n',
        '        "calls": [],\n',
        "    },\n",
    ]
    return "".join(lines[:end] + block + lines[end:])


def render(names: Names, entry: Service, inv: Inventory) -> dict[str, str]:
    """Every new file, by workspace path."""
    tokens = {
        **names.tokens,
        "__PORT__": str(entry.port),
        "__DATABASE__": entry.database,
        "__AUTHSVC_PORT__": str(inv.get("authsvc").port),
    }
    files = {}
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        path = str(template.relative_to(TEMPLATES)).removesuffix(".tmpl")
        text = template.read_text()
        for token, value in tokens.items():
            path = path.replace(token, value)
            text = text.replace(token, value)
        files[path] = text
    return files


def find_ruff() -> str | None:
    # ruff ships its binary as wheel data; rules_python puts it under <repo>/bin/.
    runfiles = Path(os.environ.get("RUNFILES_DIR", Path.cwd().parent))
    for candidate in runfiles.glob("*/bin/ruff"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def scaffold(root: Path, raw_name: str) -> tuple[Service, list[str]]:
    """Write the new service into the workspace at `root`; return its inventory entry and
    the paths it touched."""
    names = names_for(raw_name)
    inv = inventory.load()
    entry = new_entry(inv, names)
    files = render(names, entry, inv)
    taken = [p for p in files if (root / p).exists()]
    for directory in (f"services/{names.service}", f"protos/{names.proto}"):
        if (root / directory).exists():
            taken.append(directory)
    if taken:
        raise ScaffoldError(f"already there, nothing written: {', '.join(sorted(set(taken)))}")
    grown = Inventory((*inv.services, entry))
    # Checked before writing anything: every generated region must be where it belongs.
    generated.render(root, grown)
    bzl = root / INVENTORY_FILE
    bzl.write_text(inventory_text(bzl.read_text(), entry))
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    touched = [INVENTORY_FILE, *files, *generated.write(root, grown)]
    # Import order depends on the name (first-party packages sort alphabetically): let
    # ruff, with the ruff.toml that now lists the new proto package, settle it.
    ruff = find_ruff()
    python = [str(root / p) for p in files if p.endswith(".py")]
    if ruff is not None:
        config = str(root / "ruff.toml")
        for args in (["check", "--fix", "--select", "I"], ["format"]):
            subprocess.run(  # noqa: S603 - the workspace's own ruff and files
                [ruff, *args, "--quiet", "--no-cache", "--config", config, *python], check=True
            )
    return entry, touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Example: tools/bazel run //tools/new_service -- ledger",
    )
    parser.add_argument("name", help="the service's domain, e.g. ledger (makes ledgersvc)")
    args = parser.parse_args(argv)
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        print("run me with `tools/bazel run //tools/new_service -- NAME`", file=sys.stderr)
        return 2
    try:
        entry, touched = scaffold(Path(workspace), args.name)
    except (ScaffoldError, generated.RegionError, inventory.InventoryError) as exc:
        print(f"new_service: {exc}", file=sys.stderr)
        return 1
    for path in touched:
        print(f"wrote {path}")
    print(
        f"\n{entry.name} is ready: `tools/bazel test //services/{entry.name}/...`, then "
        f"`tools/bazel run //tools/local:run` serves it on port {entry.port}. Next: rename "
        f"the item in protos/{entry.proto}/v1/{entry.proto}.proto and grow it from there."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
