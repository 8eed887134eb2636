"""A calling service's side: minting its short-lived tokens and sending them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from libs.platform.auth.keys import load_private_key
from libs.platform.auth.tokens import ALGORITHM, AUTHORIZATION_HEADER, SERVICE_PREFIX
from libs.platform.rpc_types import ClientContinuation, with_metadata

SERVICE_TOKEN_TTL_SECONDS = 120


class ServiceTokenSigner:
    """Mints this service's short-lived tokens, one cached per audience until near expiry."""

    def __init__(
        self,
        name: str,
        key: Ed25519PrivateKey,
        *,
        ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._key = key
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_file(cls, name: str, path: str | None) -> ServiceTokenSigner | None:
        if not path:
            return None
        return cls(name, load_private_key(path, "SERVICE_KEY_FILE"))

    def token_for(self, audience: str) -> str:
        now = self._clock()
        cached = self._cache.get(audience)
        # Renew with a third of the lifetime left, so no call carries a nearly dead token.
        if cached and cached[1] - now > self._ttl / 3:
            return cached[0]
        iss = SERVICE_PREFIX + self.name
        exp = int(now) + self._ttl
        token = jwt.encode(
            {"iss": iss, "sub": iss, "aud": audience, "iat": int(now), "exp": exp},
            self._key,
            algorithm=ALGORITHM,
            headers={"kid": iss},
        )
        self._cache[audience] = (token, exp)
        return token


class BearerClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <service token>` for `audience` to every outgoing call."""

    def __init__(self, signer: ServiceTokenSigner, audience: str) -> None:
        self._signer = signer
        self._audience = audience

    async def intercept_unary_unary(
        self,
        continuation: ClientContinuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = [
            (k, v)
            for k, v in (client_call_details.metadata or ())
            if k.lower() != AUTHORIZATION_HEADER
        ]
        metadata.append((AUTHORIZATION_HEADER, f"Bearer {self._signer.token_for(self._audience)}"))
        details = with_metadata(client_call_details, grpc.aio.Metadata(*metadata))
        return await continuation(details, request)
