"""A container's environment as the kubelet computes it from `env` (valueFrom, $(VAR)).

Each entry is resolved in order: `value` has `$(NAME)` replaced by an earlier entry's value
(unknown names stay as written, `$$` is a literal `$`), `valueFrom` reads a Secret or
ConfigMap key. Anything else (fieldRef, resourceFieldRef, envFrom) is refused rather than
silently dropped.
"""

from __future__ import annotations

from typing import Any

from tools.containers.objects import ManifestError, Rendered


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(defined.get(name, value[i : end + 1]))
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _from_ref(rendered: Rendered, source: dict[str, Any], container: str) -> str | None:
    for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if field in source:
            ref = source[field]
            try:
                return rendered.key(kind, ref)
            except ManifestError:
                if ref.get("optional"):
                    return None  # an optional missing key leaves the variable unset
                raise
    raise ManifestError(f"{container}: unsupported valueFrom {sorted(source)}")


def resolve(container: dict[str, Any], rendered: Rendered) -> tuple[tuple[str, str], ...]:
    """(name, value) pairs in manifest order; a later duplicate replaces an earlier one."""
    name = container["name"]
    if container.get("envFrom"):
        raise ManifestError(f"{name}: envFrom is not supported")
    defined: dict[str, str] = {}
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            value = _from_ref(rendered, entry["valueFrom"], name)
            if value is None:
                continue
        else:
            value = expand(str(entry.get("value", "")), defined)
        defined.pop(entry["name"], None)
        defined[entry["name"]] = value
    return tuple(defined.items())
