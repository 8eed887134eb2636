"""The verified-token cache in TokenVerifier: hits skip the signature check, but never
outlive the token's exp, a withdrawn JWKS key or an untrusted service key."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from libs.platform.auth.jwks import JwksCache
from libs.platform.auth.principals import Principal
from libs.platform.auth.verification import TokenVerifier
from libs.platform.errors import Unauthenticated

USER = "2f1d8e8a-0000-4000-8000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Keys:
    """A JWKS the test controls, and a count of fetches."""

    def __init__(self) -> None:
        self.private = {"k1": Ed25519PrivateKey.generate()}
        self.fetches = 0

    async def fetch(self) -> dict[str, Ed25519PublicKey]:
        self.fetches += 1
        return {kid: key.public_key() for kid, key in self.private.items()}

    def mint(self, sub: str = USER, kid: str = "k1", ttl: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": "authsvc", "aud": "micro", "sub": sub, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self.private[kid], algorithm="EdDSA", headers={"kid": kid})


class CountingVerifier(TokenVerifier):
    uncached = 0

    async def _verify_uncached(self, token: str) -> Any:
        type(self).uncached += 1
        return await super()._verify_uncached(token)


@pytest.fixture
def keys() -> Keys:
    return Keys()


def make(keys: Keys, clock: Clock, **kw: Any) -> CountingVerifier:
    CountingVerifier.uncached = 0
    jwks = JwksCache(keys.fetch, min_refresh_seconds=0.0)
    return CountingVerifier("usersvc", "authsvc", "micro", jwks, clock=clock, **kw)


async def test_repeated_token_is_verified_once(keys: Keys) -> None:
    verifier = make(keys, Clock())
    token = keys.mint()
    for _ in range(5):
        assert await verifier.verify(token) == Principal("user", USER)
    assert CountingVerifier.uncached == 1


async def test_cached_answer_ends_at_exp(keys: Keys) -> None:
    clock = Clock()
    verifier = make(keys, clock)
    token = keys.mint(ttl=60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    await verifier.verify(token)
    clock.now = exp - 1
    await verifier.verify(token)
    assert CountingVerifier.uncached == 1
    # At exp the cache no longer answers: the token goes through full verification again.
    clock.now = exp
    await verifier.verify(token)
    assert CountingVerifier.uncached == 2


async def test_expired_token_is_refused_even_after_a_hit(keys: Keys) -> None:
    verifier = make(keys, Clock())
    token = keys.mint(ttl=-3600)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)  # failures are never cached as successes


async def test_withdrawn_key_invalidates_cached_tokens(keys: Keys) -> None:
    verifier = make(keys, Clock())
    token = keys.mint()
    await verifier.verify(token)
    keys.private = {"k2": Ed25519PrivateKey.generate()}  # authsvc stops publishing k1
    assert verifier.jwks is not None
    verifier.jwks.refresh_seconds = 0  # the next lookup refreshes the keys
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(token)


async def test_untrusted_service_key_invalidates_cached_tokens(keys: Keys) -> None:
    service_key = Ed25519PrivateKey.generate()
    trusted = {"paymentsvc": service_key.public_key()}
    verifier = make(keys, Clock(), trusted_services=trusted)
    now = int(time.time())
    iss = "service:paymentsvc"
    token = jwt.encode(
        {"iss": iss, "sub": iss, "aud": "usersvc", "iat": now, "exp": now + 120},
        service_key,
        algorithm="EdDSA",
        headers={"kid": iss},
    )
    assert await verifier.verify(token) == Principal("service", "paymentsvc")
    await verifier.verify(token)
    assert CountingVerifier.uncached == 1
    del trusted["paymentsvc"]
    # Refused like a forged signature: the text must not say whom the callee trusts.
    with pytest.raises(Unauthenticated, match="signature is invalid"):
        await verifier.verify(token)


async def test_cache_is_bounded(keys: Keys) -> None:
    verifier = make(keys, Clock(), cache_size=2)
    tokens = [keys.mint(sub=f"{USER[:-1]}{i}") for i in range(3)]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier._verified) == 2
    await verifier.verify(tokens[0])  # evicted first: verified again
    assert CountingVerifier.uncached == 4
