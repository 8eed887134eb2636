"""Ed25519 keys: PEM files (private, public, trusted services) and their JWK encoding."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(Exception):
    """A key file is missing, unreadable or not Ed25519."""


def load_private_key(path: str, what: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot load {what} {path!r}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{what} {path!r} is not an Ed25519 private key")
    return key


def load_public_key(path: str | Path, what: str) -> Ed25519PublicKey:
    """A PEM public key, or a private key whose public half is taken."""
    try:
        data = Path(path).read_bytes()
        if b"PRIVATE KEY" in data:
            key: Any = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot load {what} {str(path)!r}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{what} {str(path)!r} is not an Ed25519 key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_trusted_service_keys(location: str | None) -> dict[str, Ed25519PublicKey]:
    """TRUSTED_SERVICE_KEYS: a directory of `<service>.pem` (or a single such file)."""
    if not location:
        return {}
    path = Path(location)
    files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
    if not path.exists():
        raise KeyFileError(f"TRUSTED_SERVICE_KEYS {location!r} does not exist")
    return {f.stem: load_public_key(f, "trusted service key") for f in files}


def jwk_x(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_from_jwk_x(x: str) -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)
