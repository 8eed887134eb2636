"""Access tokens (EdDSA JWTs) and opaque refresh tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import jwt

from services.authsvc.keys import SigningKey


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: dt.datetime


class TokenIssuer:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl = dt.timedelta(seconds=ttl_seconds)

    def issue(self, user_id: str, now: dt.datetime | None = None) -> AccessToken:
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        expires = now + self._ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(
            claims, self._key.private_key, algorithm="EdDSA", headers={"kid": self._key.kid}
        )
        return AccessToken(token, expires)


REFRESH_TOKEN_BYTES = 32
# token_urlsafe's length for that many bytes: unpadded URL-safe base64.
REFRESH_TOKEN_CHARS = -(-REFRESH_TOKEN_BYTES * 4 // 3)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
