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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from libs.inventory import Inventory
from libs.platform.config import env_names, load_settings
from libs.platform.testing.launch import public_pem, write_private_key
from libs.platform.testing.net import free_port

T = TypeVar("T")


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
    issuer = next((s.name for s in running if s.issues_tokens), None)
    if issuer is not None:
        write_private_key(keys / "signing.key")
        env[issuer]["AUTH_SIGNING_KEY_FILE"] = str(keys / "signing.key")
    return env


def settings(cls: type[T], values: Mapping[str, object]) -> T:
    """`cls` loaded the way a deployed process loads it, from `values` (field name -> value)
    turned into its environment variables; a None value leaves the field unset. Tests get
    the same parsing and checks as production, and no untyped keyword arguments."""
    names = env_names(cls)
    env = {
        names.get(name, name.upper()): str(value)
        for name, value in values.items()
        if value is not None
    }
    return load_settings(cls, env)


@dataclass(frozen=True)
class Wired:
    """`wiring()` for services on loopback ports chosen up front (each is told the others'
    addresses before any starts). A harness may start any of them, stand in for others on
    their ports, or leave some down."""

    ports: Mapping[str, int]
    env: Mapping[str, Mapping[str, str]]

    @classmethod
    def on_loopback(cls, inventory: Inventory, keys: Path, names: Iterable[str]) -> Wired:
        ports = {name: free_port() for name in names}
        keys.mkdir(parents=True, exist_ok=True)
        addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        return cls(ports, wiring(inventory, keys, addresses))

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def settings(self, cls: type[T], name: str, values: Mapping[str, object]) -> T:
        """`name`'s Settings in-process: its wiring, its port on loopback, then `values`."""
        wired = {key.lower(): value for key, value in self.env[name].items()}
        port = {"grpc_port": self.ports[name], "grpc_host": "127.0.0.1"}
        return settings(cls, {**wired, **port, **values})

    def process_env(self, name: str) -> dict[str, str]:
        """`name`'s environment as a child process: its wiring and its port."""
        return {**self.env[name], "GRPC_PORT": str(self.ports[name])}


def mounted(env: Mapping[str, str], keys: Path, at: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """One service's wiring for a container that sees `keys` at `at`: the environment with
    its key paths moved there, and the files (relative to `keys`) it names, so a container
    gets only its own secrets, as a Kubernetes Secret mount would give it."""
    moved: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for name, value in env.items():
        path = Path(value)
        if not path.is_absolute() or not path.is_relative_to(keys):
            moved[name] = value
            continue
        moved[name] = f"{at}/{path.relative_to(keys)}"
        for f in [path] if path.is_file() else sorted(path.iterdir()):
            files[str(f.relative_to(keys))] = f.read_bytes()
    return moved, files
