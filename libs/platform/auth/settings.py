"""The auth settings a service reads (SERVICE_KEY_FILE, TRUSTED_SERVICE_KEYS, the token
issuer's address, ...) and the signer, interceptors and verifier they make."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc

from libs import inventory
from libs.platform import config as c
from libs.platform.auth.jwks import JwksCache, fetch_jwks
from libs.platform.auth.keys import load_trusted_service_keys
from libs.platform.auth.service_tokens import BearerClientInterceptor, ServiceTokenSigner
from libs.platform.auth.verification import TokenFailureLimit, TokenVerifier

log = logging.getLogger(__name__)

# The service that signs the users' tokens is an inventory fact (issues_tokens), so the
# platform never names it; its address is read from its <NAME>_ADDR like every address.
_ISSUER = inventory.token_issuer()


@dataclass(frozen=True, kw_only=True)
class ServiceIdentitySettings:
    # This service's Ed25519 private key (PEM) for the tokens it sends to other services.
    service_key_file: str | None = c.setting(None)
    # Directory of `<service>.pem` public keys (or one such file) of services it accepts.
    trusted_service_keys: str | None = c.setting(None)

    def signer(self, name: str) -> ServiceTokenSigner | None:
        return ServiceTokenSigner.from_file(name, self.service_key_file)

    def outgoing(self, name: str, audience: str) -> list[grpc.aio.ClientInterceptor]:
        """Client interceptors that authenticate calls from `name` to `audience`."""
        signer = self.signer(name)
        if signer is None:
            log.warning(
                "SERVICE_KEY_FILE is not set: calls to %s are anonymous and will be refused",
                audience,
            )
            return []
        return [BearerClientInterceptor(signer, audience)]


@dataclass(frozen=True, kw_only=True)
class TokenSettings(ServiceIdentitySettings):
    # Where the users' tokens' public keys come from (GetJwks), and whom to ask to revoke a
    # user's sessions.
    token_issuer_addr: str = c.address(_ISSUER.local_address, env=f"{_ISSUER.env_prefix}_ADDR")
    auth_issuer: str = c.setting(_ISSUER.name)
    auth_audience: str = c.setting("micro")
    jwks_refresh_seconds: float = c.setting(300.0, min=1.0)
    jwks_min_refresh_seconds: float = c.setting(10.0, min=0.0)
    # Calls in flight per user principal in each process (verification.AuthInterceptor);
    # 0: no cap. One account at concurrency 200 must not take what other users need.
    user_max_in_flight: int = c.setting(32, min=0, max=100_000)
    # Tokens failing verification per caller address and process (TokenFailureLimit);
    # 0 per second: no limit.
    token_failures_burst: float = c.setting(TokenFailureLimit.burst, min=1.0, max=1e6)
    token_failures_per_second: float = c.setting(TokenFailureLimit.per_second, min=0.0, max=1e6)

    def token_failure_limit(self) -> TokenFailureLimit | None:
        if not self.token_failures_per_second:
            return None
        return TokenFailureLimit(self.token_failures_burst, self.token_failures_per_second)

    def verifier(self, service_name: str, authsvc: Any) -> TokenVerifier:
        """`authsvc` is an auth.v1.AuthServiceStub; keys are fetched lazily on first use."""
        return TokenVerifier(
            service_name=service_name,
            issuer=self.auth_issuer,
            audience=self.auth_audience,
            jwks=JwksCache(
                lambda: fetch_jwks(authsvc),
                refresh_seconds=self.jwks_refresh_seconds,
                min_refresh_seconds=self.jwks_min_refresh_seconds,
            ),
            trusted_services=load_trusted_service_keys(self.trusted_service_keys),
        )
