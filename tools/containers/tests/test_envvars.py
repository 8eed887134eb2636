from __future__ import annotations

import base64

import pytest

from tools.containers.envvars import expand, resolve
from tools.containers.objects import ManifestError, Rendered


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgres://u:$(PW)@h/db", "postgres://u:s3cret@h/db"),
        ("$(UNKNOWN) stays", "$(UNKNOWN) stays"),
        ("$$(PW) is escaped", "$(PW) is escaped"),
        ("$$ is one dollar", "$ is one dollar"),
        ("$(PW", "$(PW"),
        ("a $ alone", "a $ alone"),
        ("ends with $", "ends with $"),
        ("$(PW)$(PW)", "s3crets3cret"),
    ],
)
def test_expand_follows_kubernetes(value: str, expected: str) -> None:
    assert expand(value, {"PW": "s3cret"}) == expected


def _secret(name: str, **data: str) -> dict:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"kind": "Secret", "metadata": {"name": name}, "data": encoded}


def test_resolve_reads_refs_and_expands_only_earlier_variables() -> None:
    rendered = Rendered(
        (
            _secret("db", password="pw"),
            {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"level": "DEBUG"}},
        )
    )
    container = {
        "name": "svc",
        "env": [
            {"name": "EARLY", "value": "$(LATER)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "URL", "value": "x://u:$(PW)@h"},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "LATER", "value": "late"},
            {
                "name": "GONE",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope", "optional": True}},
            },
        ],
    }
    assert resolve(container, rendered) == (
        ("EARLY", "$(LATER)"),
        ("PW", "pw"),
        ("URL", "x://u:pw@h"),
        ("LEVEL", "DEBUG"),
        ("LATER", "late"),
    )


def test_resolve_refuses_a_missing_key_and_unsupported_sources() -> None:
    rendered = Rendered((_secret("db", password="pw"),))
    missing = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
    }
    with pytest.raises(ManifestError, match="has no key 'k'"):
        resolve(missing, rendered)
    field_ref = {"name": "c", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}
    with pytest.raises(ManifestError, match="unsupported valueFrom"):
        resolve(field_ref, rendered)
