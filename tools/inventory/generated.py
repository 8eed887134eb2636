"""What is generated from the service inventory: marked regions of files that other tools
read as they are (kustomize, PostgreSQL's init script, tools/k3d/k3d.sh, ruff), plus the dev
key pair of every service that calls another.

A region is the lines between two comment lines (`#`, `--` or `<!-- -->`, whatever the file
uses):

    # BEGIN services (generated: tools/bazel run //tools/inventory:sync)
    ...
    # END services

Only the lines in between are rewritten, indented like the BEGIN line; everything around
them stays hand-written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from libs.inventory import Inventory

FIX = "tools/bazel run //tools/inventory:sync"
BEGIN = re.compile(r"^(?P<indent>\s*)(?P<comment>#|--|<!--) BEGIN (?P<name>[a-z ]+) \(generated: ")
KUSTOMIZE = "deploy/kustomize"
BASE = f"{KUSTOMIZE}/base"
PROD = f"{KUSTOMIZE}/overlays/prod"
# Where the prod overlay reads each calling service's public key.
PROD_PUBLIC_KEYS = "secrets/service-public-keys"


class RegionError(Exception):
    """A file lacks the markers of a region it must have."""


@dataclass(frozen=True)
class Region:
    path: str  # relative to the workspace
    name: str
    render: Callable[[Inventory], list[str]]


def dev_service_key(name: str) -> str:
    """Relative to base/: the committed, public dev key a calling service signs with."""
    return f"secrets/{name}-service-key.dev-only-change-me.pem"


def public_key(name: str) -> str:
    """Relative to base/: its public half, which each service it calls trusts."""
    return f"service-public-keys/{name}.pem"


def _resources(inv: Inventory) -> list[str]:
    return [f"- services/{s.name}.yaml" for s in inv.services]


def _trusted_keys(prefix: str, behavior: bool) -> Callable[[Inventory], list[str]]:
    def render(inv: Inventory) -> list[str]:
        lines = []
        for s in inv.services:
            callers = inv.callers_of(s.name)
            if not callers:
                continue
            lines += [f"- name: {s.name}-trusted-service-keys"]
            lines += ["  behavior: replace"] if behavior else []
            lines += ["  files:"]
            lines += [f"    - {c}.pem={prefix}{public_key(c)}" for c in callers]
        return lines

    return render


def _base_passwords(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.services:
        lines += [
            f"- name: {s.name}-db",
            "  type: Opaque",
            "  literals:",
            f"    - password=change-me-dev-{s.name}-db",
        ]
    return lines


def _base_service_keys(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.callers():
        lines += [
            f"- name: {s.name}-service-key",
            "  type: Opaque",
            "  files:",
            f"    - service_key.pem={dev_service_key(s.name)}",
        ]
    return lines


def _dev_replicas(inv: Inventory) -> list[str]:
    return [line for s in inv.services for line in (f"- name: {s.name}", "  count: 1")]


def _dev_images(inv: Inventory) -> list[str]:
    return [line for s in inv.services for line in (f"- name: {s.name}", "  newTag: dev")]


def _prod_images(inv: Inventory) -> list[str]:
    lines = []
    for i, s in enumerate(inv.services, start=1):
        lines += [
            f"- name: {s.name}",
            f"  newName: registry.example.com/micro/{s.name}",
            f"  digest: sha256:{i:064x}",
        ]
    return lines


def _prod_patches(inv: Inventory) -> list[str]:
    return [f"- path: patches/{s.name}.yaml" for s in inv.services]


def _prod_passwords(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.services:
        lines += [
            f"- name: {s.name}-db",
            "  behavior: replace",
            "  type: Opaque",
            "  envs:",
            f"    - secrets/{s.name}-db.env",
        ]
    return lines


def _prod_service_keys(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.callers():
        lines += [
            f"- name: {s.name}-service-key",
            "  behavior: replace",
            "  type: Opaque",
            "  files:",
            f"    - service_key.pem=secrets/{s.name}-service-key.pem",
        ]
    return lines


def _disruption_budgets(inv: Inventory) -> list[str]:
    docs = []
    for s in inv.services:
        docs.append(
            [
                "apiVersion: policy/v1",
                "kind: PodDisruptionBudget",
                "metadata:",
                f"  name: {s.name}",
                "  labels:",
                f"    app.kubernetes.io/name: {s.name}",
                "spec:",
                "  minAvailable: 1",
                "  selector:",
                "    matchLabels:",
                f"      app.kubernetes.io/name: {s.name}",
            ]
        )
    return [line for i, doc in enumerate(docs) for line in (["---"] if i else []) + doc]


def _postgres_env(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.services:
        lines += [
            f"- name: {s.env_prefix}_DB_PASSWORD",
            "  valueFrom:",
            "    secretKeyRef:",
            f"      name: {s.name}-db",
            "      key: password",
        ]
    return lines


def _initdb_passwords(inv: Inventory) -> list[str]:
    lines = []
    for s in inv.services:
        var = f"{s.env_prefix}_DB_PASSWORD"
        lines += [
            f': "${{{var}:?must come from the {s.name}-db Secret}}"',
            f'set -- "$@" -v {s.name}_pw="${var}"',
        ]
    return lines


def _initdb_roles(inv: Inventory) -> list[str]:
    return [
        f"CREATE ROLE {s.name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
        f"NOBYPASSRLS PASSWORD :'{s.name}_pw';"
        for s in inv.services
    ]


def _initdb_databases(inv: Inventory) -> list[str]:
    return [f"CREATE DATABASE {s.database} OWNER {s.name};" for s in inv.services]


def _initdb_connect(inv: Inventory) -> list[str]:
    return [
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {s.database} FROM PUBLIC;" for s in inv.services
    ]


def _secret_files(inv: Inventory) -> list[str]:
    rows = [
        (
            "secrets/postgres-superuser.env",
            "Secret `postgres-superuser`, key `password`",
            "`password=<hex>`",
        ),
        *(
            (
                f"secrets/{s.name}-db.env",
                f"Secret `{s.name}-db`, key `password`",
                "`password=<hex>`",
            )
            for s in inv.services
        ),
        (
            "secrets/authsvc-signing-key.pem",
            "Secret `authsvc-signing-key`, key `signing_key.pem`",
            "Ed25519 private key (PKCS#8 PEM) that signs user tokens",
        ),
    ]
    for s in inv.callers():
        rows.append(
            (
                f"secrets/{s.name}-service-key.pem",
                f"Secret `{s.name}-service-key`, key `service_key.pem`",
                f"Ed25519 private key {s.name} signs its calls to {', '.join(s.calls)} with",
            )
        )
    for s in inv.callers():
        lists = ", ".join(f"`{callee}-trusted-service-keys`" for callee in s.calls)
        rows.append(
            (
                f"{PROD_PUBLIC_KEYS}/{s.name}.pem",
                f"ConfigMap {lists}, key `{s.name}.pem`",
                f"public half of `{s.name}-service-key.pem`",
            )
        )
    return [
        "| file | becomes | content |",
        "| --- | --- | --- |",
        *(f"| `{path}` | {becomes} | {content} |" for path, becomes, content in rows),
    ]


def _password_files(inv: Inventory) -> list[str]:
    names = ["postgres-superuser", *(f"{s.name}-db" for s in inv.services)]
    return [f"for name in {' '.join(names)}; do"]


def _key_files(inv: Inventory) -> list[str]:
    return [f"for svc in {' '.join(s.name for s in inv.callers())}; do"]


def _k3d(inv: Inventory) -> list[str]:
    return [
        f"SERVICES=({' '.join(inv.names())})",
        f"GRPC_PORTS=({' '.join(str(s.port) for s in inv.services)})",
    ]


def _first_party(inv: Inventory) -> list[str]:
    return [f'"{s.proto}",' for s in inv.services]


INITDB = f"{BASE}/postgres/initdb/10-service-databases.sh"
PROD_SECRETS = f"{PROD}/secrets.example/README.md"
REGIONS = (
    Region(f"{BASE}/kustomization.yaml", "services", _resources),
    Region(f"{BASE}/kustomization.yaml", "trusted service keys", _trusted_keys("", False)),
    Region(f"{BASE}/kustomization.yaml", "database passwords", _base_passwords),
    Region(f"{BASE}/kustomization.yaml", "service keys", _base_service_keys),
    Region(f"{BASE}/postgres/statefulset.yaml", "database passwords", _postgres_env),
    Region(INITDB, "passwords", _initdb_passwords),
    Region(INITDB, "roles", _initdb_roles),
    Region(INITDB, "databases", _initdb_databases),
    Region(INITDB, "connect", _initdb_connect),
    Region(f"{KUSTOMIZE}/overlays/dev/kustomization.yaml", "replicas", _dev_replicas),
    Region(f"{KUSTOMIZE}/overlays/dev/kustomization.yaml", "images", _dev_images),
    Region(f"{PROD}/kustomization.yaml", "images", _prod_images),
    Region(f"{PROD}/kustomization.yaml", "patches", _prod_patches),
    Region(f"{PROD}/kustomization.yaml", "database passwords", _prod_passwords),
    Region(f"{PROD}/kustomization.yaml", "service keys", _prod_service_keys),
    Region(f"{PROD}/kustomization.yaml", "trusted service keys", _trusted_keys("secrets/", True)),
    Region(f"{PROD}/pdb.yaml", "disruption budgets", _disruption_budgets),
    Region(PROD_SECRETS, "secret files", _secret_files),
    Region(PROD_SECRETS, "password files", _password_files),
    Region(PROD_SECRETS, "service keys", _key_files),
    Region("tools/k3d/k3d.sh", "services", _k3d),
    Region("ruff.toml", "proto packages", _first_party),
)
PATHS = tuple(dict.fromkeys(r.path for r in REGIONS))


def replace_region(text: str, path: str, name: str, lines: list[str]) -> str:
    """`text` with the lines of region `name` replaced by `lines`."""
    old = text.splitlines(keepends=True)
    for i, line in enumerate(old):
        m = BEGIN.match(line)
        if m and m["name"] == name:
            close = " -->" if m["comment"] == "<!--" else ""
            end = f"{m['indent']}{m['comment']} END {name}{close}"
            for j in range(i + 1, len(old)):
                if old[j].rstrip("\n") == end:
                    new = [f"{m['indent']}{x}\n" if x else "\n" for x in lines]
                    return "".join(old[: i + 1] + new + old[j:])
            raise RegionError(f"{path}: region {name!r} has no line {end.strip()!r}")
    raise RegionError(f"{path}: no region {name!r} (a line `# BEGIN {name} (generated: {FIX})`)")


def render(root: Path, inv: Inventory) -> dict[str, str]:
    """Each generated file's text as the inventory says it should be, by workspace path."""
    out = {}
    for path in PATHS:
        text = (root / path).read_text()
        for region in REGIONS:
            if region.path == path:
                text = replace_region(text, path, region.name, region.render(inv))
        out[path] = text
    return out


def stale(root: Path, inv: Inventory) -> list[str]:
    """Workspace paths whose generated parts differ from the inventory, or are missing."""
    wrong = [p for p, text in render(root, inv).items() if (root / p).read_text() != text]
    for s in inv.callers():
        private = root / BASE / dev_service_key(s.name)
        public = root / BASE / public_key(s.name)
        if not private.exists() or not public.exists():
            wrong += [str(p.relative_to(root)) for p in (private, public) if not p.exists()]
        elif public.read_bytes() != _public_half(private.read_bytes()):
            wrong.append(str(public.relative_to(root)))
    return wrong


def _public_half(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write(root: Path, inv: Inventory) -> list[str]:
    """Bring every generated part up to date; return the workspace paths it changed."""
    changed = []
    for path, text in render(root, inv).items():
        if (root / path).read_text() != text:
            (root / path).write_text(text)
            changed.append(path)
    for s in inv.callers():
        private = root / BASE / dev_service_key(s.name)
        public = root / BASE / public_key(s.name)
        if not private.exists():
            # Committed on purpose and public, like the others: dev clusters only.
            private.write_bytes(
                Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            changed.append(str(private.relative_to(root)))
        half = _public_half(private.read_bytes())
        if not public.exists() or public.read_bytes() != half:
            public.parent.mkdir(parents=True, exist_ok=True)
            public.write_bytes(half)
            changed.append(str(public.relative_to(root)))
    return changed
