"""The system's wiring for harnesses that start the services themselves: which key each
service signs its calls with, whose keys each trusts, where each finds the others, and which
key signs the users' tokens.

In Kubernetes the manifests carry this wiring (deploy/kustomize, generated from
services/inventory.bzl). The local run and the floods take it from here instead of
re-deriving it, built from the inventory they pass in, so that they run production's
topology (a service trusts exactly its callers, `calls` in the inventory) and a new service
or a new `calls` entry reaches them without an edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from libs.inventory import Inventory
from libs.platform.config import load_settings
from libs.platform.testing.launch import public_pem, write_private_key

T = TypeVar("T")

# The service that issues the users' access tokens; it alone holds their signing key.
TOKEN_ISSUER = "authsvc"  # noqa: S105 - a service name, not a secret


def wiring(
    inventory: Inventory, keys: Path, addresses: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Each running service's environment beyond its own port and database.

    `addresses` names the services that run (a harness may run a subset) and where each
    listens; every one of them learns all of those addresses (`<NAME>_ADDR`). A service that
    calls another running one gets a key of its own (SERVICE_KEY_FILE), a service called by
    others a directory of exactly their public keys (TRUSTED_SERVICE_KEYS), and the token
    issuer its signing key (AUTH_SIGNING_KEY_FILE). Keys are written under `keys`.
    """
    running = [s for s in inventory.services if s.name in addresses]
    unknown = set(addresses) - {s.name for s in running}
    if unknown:
        raise ValueError(f"not in the inventory: {', '.join(sorted(unknown))}")
    where = {f"{s.env_prefix}_ADDR": addresses[s.name] for s in running}
    env: dict[str, dict[str, str]] = {s.name: dict(where) for s in running}
    public: dict[str, bytes] = {}
    for s in running:
        if any(callee in addresses for callee in s.calls):
            path = keys / f"{s.name}.key"
            public[s.name] = public_pem(write_private_key(path))
            env[s.name]["SERVICE_KEY_FILE"] = str(path)
    for s in running:
        callers = [name for name in inventory.callers_of(s.name) if name in public]
        if not callers:
            continue
        trusted = keys / f"trusted-by-{s.name}"
        trusted.mkdir()
        for name in callers:
            (trusted / f"{name}.pem").write_bytes(public[name])
        env[s.name]["TRUSTED_SERVICE_KEYS"] = str(trusted)
    if TOKEN_ISSUER in env:
        write_private_key(keys / "signing.key")
        env[TOKEN_ISSUER]["AUTH_SIGNING_KEY_FILE"] = str(keys / "signing.key")
    return env


def settings(cls: type[T], values: Mapping[str, object]) -> T:
    """`cls` loaded the way a deployed process loads it, from `values` (field name -> value)
    turned into its environment variables; a None value leaves the field unset. Tests get
    the same parsing and checks as production, and no untyped keyword arguments."""
    env = {name.upper(): str(value) for name, value in values.items() if value is not None}
    return load_settings(cls, env)
