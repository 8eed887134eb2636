"""Device tokens: OWASP's device cookies ("Slow Down Online Guessing Attacks with Device
Cookies"), over gRPC.

A successful login returns a token naming the account (its canonical email) and a random
device id, signed with authsvc's key; the client keeps it and sends it with that account's
next logins. A login that presents a valid one for the account it names is the owner's
device: its failures are counted for that device alone, strangers' failures (the account and
address ceilings) do not apply to it, and its password check goes first under load
(throttle.py, usersvc's login lane). It grants nothing else: no access, no skipped password.

A JWT with its own audience, so it can never pass as an access token (whose audience is
AUTH_AUDIENCE) nor an access token as one of these.
"""

from __future__ import annotations

import datetime as dt
import secrets

import jwt

from services.authsvc.keys import KeyRing

MAX_DEVICE_TOKEN = 2048  # longer values are ignored unread


class DeviceTokens:
    def __init__(self, keys: KeyRing, *, issuer: str, ttl_seconds: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = f"{issuer}/device"
        self._ttl = dt.timedelta(seconds=ttl_seconds)

    def issue(self, account: str, device: str | None = None) -> str:
        """A token for `account` (canonical email); `device` keeps a known device's id."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": account,
            "did": device or secrets.token_urlsafe(12),
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
        }
        signing = self._keys.signing
        return jwt.encode(
            claims, signing.private_key, algorithm="EdDSA", headers={"kid": signing.kid}
        )

    def device_of(self, token: str, account: str) -> str | None:
        """The device id of a valid token for `account`, else None (never an error: a
        stale or foreign token only means the device is not known)."""
        if not token or len(token) > MAX_DEVICE_TOKEN:
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.public_keys().get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "did"]},
            )
        except jwt.PyJWTError:
            return None
        device = claims.get("did")
        if claims.get("sub") != account or not isinstance(device, str) or not device:
            return None
        return device
