"""Ed25519 signing keys for access tokens."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)


class SigningKeyError(Exception):
    pass


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: str | None) -> SigningKey:
    if not path:
        log.warning(
            "AUTH_SIGNING_KEY_FILE is not set: using an ephemeral signing key; tokens will "
            "not survive a restart (development only)"
        )
        key = Ed25519PrivateKey.generate()
        return SigningKey(key, key_id(key.public_key()))
    try:
        loaded = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot load AUTH_SIGNING_KEY_FILE {path!r}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyError(f"AUTH_SIGNING_KEY_FILE {path!r} is not an Ed25519 private key")
    return SigningKey(loaded, key_id(loaded.public_key()))
