"""Lookups in a rendered set of Kubernetes objects: by kind and name, Secret and ConfigMap keys."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


class ManifestError(ValueError):
    """The rendered manifests lack something a container needs, or use what is unsupported."""


@dataclass(frozen=True)
class Rendered:
    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        if len(found) != 1:
            raise ManifestError(f"expected one {kind}/{name} in the render, found {len(found)}")
        return found[0]

    def data(self, kind: str, name: str) -> dict[str, bytes]:
        """Every key of a Secret or ConfigMap, decoded as the kubelet would write it."""
        obj = self.get(kind, name)
        out: dict[str, bytes] = {}
        if kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                out[key] = base64.b64decode(value)
            for key, value in (obj.get("stringData") or {}).items():
                out[key] = value.encode()
        elif kind == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                out[key] = value.encode()
            for key, value in (obj.get("binaryData") or {}).items():
                out[key] = base64.b64decode(value)
        else:
            raise ManifestError(f"{kind} holds no key-value data")
        return out

    def key(self, kind: str, ref: dict[str, Any]) -> str:
        """The value a secretKeyRef or configMapKeyRef points at."""
        data = self.data(kind, ref["name"])
        if ref["key"] not in data:
            raise ManifestError(f"{kind}/{ref['name']} has no key {ref['key']!r}")
        return data[ref["key"]].decode()
