"""authsvc's public keys (its GetJwks RPC), fetched on demand and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auth.v1 import auth_pb2
from libs.platform.auth.keys import key_from_jwk_x
from libs.platform.auth.tokens import ALGORITHM
from libs.platform.errors import Unavailable

log = logging.getLogger(__name__)

JWKS_DEADLINE_SECONDS = 2.0

JwksFetcher = Callable[[], Awaitable[Mapping[str, Ed25519PublicKey]]]


@dataclass
class JwksCache:
    """authsvc's public keys by kid, refreshed every `refresh_seconds` when used, and on an
    unknown kid at most once per `min_refresh_seconds` (so garbage kids cannot make every
    request hit authsvc)."""

    fetch: JwksFetcher
    refresh_seconds: float = 300.0
    min_refresh_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, Ed25519PublicKey] | None = None
    _fetched_at: float = 0.0
    _attempted_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fetches: int = 0

    async def _refresh(self) -> None:
        async with self._lock:
            now = self.clock()
            if now - self._attempted_at < self.min_refresh_seconds and self._keys is not None:
                return  # someone else refreshed while we waited for the lock
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = dict(await self.fetch())
            except Exception as exc:
                log.warning("could not refresh signing keys from authsvc: %r", exc)
                if self._keys is None:
                    raise Unavailable(
                        "cannot verify the token: authsvc's signing keys are unavailable; "
                        "retry later"
                    ) from exc
                return
            self._keys = keys
            self._fetched_at = now
            log.info("signing keys refreshed", extra={"kids": sorted(keys)})

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        now = self.clock()
        if self._keys is None or now - self._fetched_at >= self.refresh_seconds:
            await self._refresh()
        assert self._keys is not None
        key = self._keys.get(kid)
        if key is None and now - self._attempted_at >= self.min_refresh_seconds:
            await self._refresh()
            key = self._keys.get(kid)
        return key


async def fetch_jwks(stub: Any) -> dict[str, Ed25519PublicKey]:
    """Ask authsvc (auth.v1.AuthService stub) for its keys; keep only usable Ed25519 ones."""
    # wait_for_ready: a channel still in reconnect backoff (authsvc started after us, or
    # restarted) waits for the connection within the deadline instead of failing at once.
    resp = await stub.GetJwks(
        auth_pb2.GetJwksRequest(), timeout=JWKS_DEADLINE_SECONDS, wait_for_ready=True
    )
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in resp.keys:
        if jwk.kty != "OKP" or jwk.crv != "Ed25519" or (jwk.alg and jwk.alg != ALGORITHM):
            continue
        try:
            keys[jwk.kid] = key_from_jwk_x(jwk.x)
        except ValueError:
            log.warning("ignoring malformed JWK", extra={"kid": jwk.kid})
    return keys
