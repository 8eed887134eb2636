"""Ed25519 keys for access tokens: one signing key, plus retired keys that still verify."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from libs.platform.auth.keys import KeyFileError, load_private_key, load_public_key

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
        loaded = load_private_key(path, "AUTH_SIGNING_KEY_FILE")
    except KeyFileError as exc:
        raise SigningKeyError(str(exc)) from exc
    return SigningKey(loaded, key_id(loaded.public_key()))


@dataclass(frozen=True)
class KeyRing:
    """The active signing key plus older public keys that still verify during a rotation."""

    signing: SigningKey
    verification: dict[str, Ed25519PublicKey]

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {**self.verification, self.signing.kid: self.signing.public_key}


def load_verification_keys(paths: str | None) -> dict[str, Ed25519PublicKey]:
    """AUTH_VERIFICATION_KEY_FILES: comma-separated PEM files, public or private keys.

    A directory in the list contributes every `*.pem` inside it, so a mounted Secret or
    ConfigMap can hold the retired keys without listing them one by one.
    """
    out: dict[str, Ed25519PublicKey] = {}
    for item in filter(None, (p.strip() for p in (paths or "").split(","))):
        path = Path(item)
        files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
        for f in files:
            try:
                key = load_public_key(f, "AUTH_VERIFICATION_KEY_FILES entry")
            except KeyFileError as exc:
                raise SigningKeyError(str(exc)) from exc
            out[key_id(key)] = key
    return out


def load_key_ring(signing_path: str | None, verification_paths: str | None) -> KeyRing:
    return KeyRing(load_signing_key(signing_path), load_verification_keys(verification_paths))
