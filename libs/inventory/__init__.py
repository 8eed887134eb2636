"""The service inventory (services/inventory.bzl) for Python: names, ports, databases, calls.

Bazel writes the inventory as JSON next to its source (//services:inventory_json); a target
that reads it depends on //libs/inventory, which carries that file in its runfiles.

    from libs import inventory
    for svc in inventory.services(): ...
    inventory.service("usersvc").port
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# libs/inventory/__init__.py -> the workspace (or runfiles) root, where services/ is.
PATH = Path(__file__).parent.parent.parent / "services" / "inventory.json"
# A service name is a DNS label, an env var prefix and a Python package name at once.
NAME = re.compile(r"^[a-z][a-z0-9]{0,39}svc$")
PROTO = re.compile(r"^[a-z][a-z0-9]{0,39}$")
DATABASE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class InventoryError(Exception):
    """The inventory contradicts itself or names something impossible."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    database: str
    proto: str
    calls: tuple[str, ...]
    issues_tokens: bool = False

    @property
    def env_prefix(self) -> str:
        """USERSVC for usersvc: its <PREFIX>_ADDR, <PREFIX>_DB_PASSWORD."""
        return self.name.upper()

    @property
    def local_address(self) -> str:
        return f"localhost:{self.port}"


@dataclass(frozen=True)
class Inventory:
    services: tuple[Service, ...]

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def get(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(f"{name!r} is not in services/inventory.bzl ({', '.join(self.names())})")

    def callers(self) -> tuple[Service, ...]:
        """Services that call another with their own token, so each holds a service key."""
        return tuple(s for s in self.services if s.calls)

    def callers_of(self, name: str) -> tuple[str, ...]:
        """Whom `name` trusts: the services that call it with their service token."""
        return tuple(s.name for s in self.services if name in s.calls)

    def token_issuer(self) -> Service:
        """The service that signs the users' tokens (`issues_tokens`) and serves their keys."""
        for s in self.services:
            if s.issues_tokens:
                return s
        raise KeyError("no service in services/inventory.bzl has issues_tokens = True")


def parse(data: Mapping[str, Mapping[str, Any]]) -> Inventory:
    """The inventory from SERVICES' form (name -> facts, in order); every contradiction is
    reported at once."""
    problems: list[str] = []
    services = []
    for name, entry in data.items():
        if not NAME.match(name):
            problems.append(
                f"{name!r}: a service name is lower-case letters and digits ending in 'svc'"
            )
        try:
            services.append(
                Service(
                    name=name,
                    port=int(entry["port"]),
                    database=str(entry["database"]),
                    proto=str(entry["proto"]),
                    calls=tuple(entry.get("calls", ())),
                    issues_tokens=entry.get("issues_tokens", False) is True,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{name!r}: port, database and proto are required ({exc!r})")
    names = {s.name for s in services}
    for field in ("port", "database", "proto"):
        seen: dict[object, str] = {}
        for s in services:
            value = getattr(s, field)
            if value in seen:
                problems.append(f"{s.name!r} and {seen[value]!r} share the {field} {value!r}")
            seen[value] = s.name
    issuers = [s.name for s in services if s.issues_tokens]
    if len(issuers) > 1:
        problems.append(f"only one service issues tokens, not {', '.join(map(repr, issuers))}")
    for s in services:
        if not 1024 <= s.port <= 65535:
            problems.append(f"{s.name!r}: port {s.port} is outside 1024-65535")
        if not DATABASE.match(s.database):
            problems.append(f"{s.name!r}: database {s.database!r} is not a plain identifier")
        if not PROTO.match(s.proto):
            problems.append(f"{s.name!r}: proto {s.proto!r} is not a plain package name")
        for callee in s.calls:
            if callee not in names:
                problems.append(f"{s.name!r} calls {callee!r}, which is not in the inventory")
            if callee == s.name:
                problems.append(f"{s.name!r} calls itself")
    if problems:
        raise InventoryError("services/inventory.bzl:\n  " + "\n  ".join(problems))
    return Inventory(tuple(services))


@cache
def load(path: Path = PATH) -> Inventory:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(
            f"{path} is missing: depend on //libs/inventory, which brings it ({exc})"
        ) from exc
    # A list of {"name": ..., facts...} (tools/inventory/inventory.bzl keeps the order).
    return parse({entry["name"]: entry for entry in json.loads(text)})


def services() -> tuple[Service, ...]:
    return load().services


def service(name: str) -> Service:
    return load().get(name)


def token_issuer() -> Service:
    return load().token_issuer()
