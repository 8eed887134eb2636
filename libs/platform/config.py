"""Typed settings from environment variables, validated once at start.

A service declares a frozen dataclass; each field is read from the env var of the same name
in upper case, or the one its metadata names (`env`). Fields without a default are required.
Limits go in field metadata (`min`, `max`, `choices`). All problems are reported together in
one ConfigError.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """Raised with a message listing every invalid or missing setting."""


def setting(default: Any = dataclasses.MISSING, **limits: Any) -> Any:
    return dataclasses.field(default=default, metadata=limits)


def _convert(raw: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if raw == "":
            return None
        return _convert(raw, args[0])
    if typ is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {raw!r}")
    if typ is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if typ is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    return raw.strip()


def env_name(f: dataclasses.Field[Any]) -> str:
    """The environment variable a settings field is read from."""
    return str(f.metadata.get("env", f.name.upper()))


def env_names(cls: type) -> dict[str, str]:
    """Field name -> environment variable, for every field of a settings class."""
    return {f.name: env_name(f) for f in dataclasses.fields(cls)}


def load_settings(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    # T is any settings dataclass; the stubs want a DataclassInstance, a typeshed-only name.
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = env_name(f)
        raw = env.get(name)
        if raw is None or (raw.strip() == "" and f.default is dataclasses.MISSING):
            if f.default is dataclasses.MISSING:
                problems.append(f"{name} is required but not set")
            continue
        try:
            value = _convert(raw, hints[f.name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        meta = f.metadata
        if value is not None:
            if "min" in meta and value < meta["min"]:
                problems.append(f"{name}: must be >= {meta['min']}, got {value}")
                continue
            if "max" in meta and value > meta["max"]:
                problems.append(f"{name}: must be <= {meta['max']}, got {value}")
                continue
            if "choices" in meta:
                if isinstance(value, str) and meta.get("upper"):
                    value = value.upper()
                if value not in meta["choices"]:
                    choices = ", ".join(map(str, meta["choices"]))
                    problems.append(f"{name}: must be one of {choices}, got {value!r}")
                    continue
            if "check" in meta:
                err = meta["check"](value)
                if err:
                    problems.append(f"{name}: {err}")
                    continue
        values[f.name] = value
    if problems:
        raise ConfigError(f"invalid configuration for {cls.__name__}:\n  " + "\n  ".join(problems))
    return cls(**values)


def check_postgres_url(value: str) -> str | None:
    if not value.startswith(("postgres://", "postgresql://")):
        return "must be a postgresql:// URL"
    return None


def check_ip_address(value: str) -> str | None:
    """A listening address: an IPv4 or IPv6 literal, so what it binds is never a DNS guess."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address such as 127.0.0.1, ::1 or 0.0.0.0, got {value!r}"
    return None


def check_address(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        return f"must be host:port, got {value!r}"
    return None


# Reusable field declarations shared by all services.
def database_url() -> Any:
    return setting(check=check_postgres_url)


def grpc_port(default: int) -> Any:
    return setting(default, min=0, max=65535)


def log_level() -> Any:
    return setting("INFO", choices=LOG_LEVELS, upper=True)


def address(default: str, **meta: Any) -> Any:
    return setting(default, check=check_address, **meta)
