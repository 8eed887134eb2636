"""The callee's side: verifying bearer tokens (cached) and the server interceptor."""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from libs.platform.admission import RateLimiter, abort_retry_later, client_address
from libs.platform.auth.jwks import JwksCache
from libs.platform.auth.principals import Principal, principal_var
from libs.platform.auth.tokens import ALGORITHM, AUTHORIZATION_HEADER, SERVICE_PREFIX
from libs.platform.errors import Unauthenticated
from libs.platform.rpc_types import Context, Continuation, Handler, unary_behavior

log = logging.getLogger(__name__)

# A real token is well under 1 KiB; anything far larger is not worth parsing.
MAX_TOKEN_LENGTH = 4096
# Tolerated clock difference between the signer and this host.
LEEWAY_SECONDS = 30
# Verified tokens remembered per process. Clients resend one token for its whole life, so a
# few thousand entries cover every active caller; an entry is ~300 bytes.
VERIFIED_CACHE_SIZE = 4096

TOO_MANY_INVALID_TOKENS = "too many invalid tokens from this address"


@dataclass(frozen=True)
class TokenFailureLimit:
    """Tokens that fail verification per caller address (IPv4 address or IPv6 /64) and
    process: `burst` at once, then `per_second`; beyond, new tokens from that address are
    refused unchecked (RESOURCE_EXHAUSTED with RetryInfo) until the bucket refills."""

    burst: float = 50.0
    per_second: float = 10.0


# Methods that never need a token: health checks and reflection are for infrastructure.
ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass
class TokenVerifier:
    service_name: str  # this service: the audience of service tokens sent to it
    issuer: str
    audience: str
    jwks: JwksCache | None
    trusted_services: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    clock: Callable[[], float] = time.time
    cache_size: int = VERIFIED_CACHE_SIZE
    # token -> (principal, exp, kid or service name, the key that verified it)
    _verified: OrderedDict[str, tuple[Principal, float, str, Ed25519PublicKey]] = field(
        default_factory=OrderedDict, repr=False
    )

    def remembers(self, token: str) -> bool:
        """Whether `token` verified before and is still in the cache (verify() rechecks it)."""
        return token in self._verified

    async def verify(self, token: str) -> Principal:
        """The caller behind `token`, from the cache when this exact token verified before.

        The EdDSA check dominates a call's CPU, and clients resend one token for its whole
        life. A cached answer holds only until the token's `exp` (never beyond), and only
        while the key that verified it is still the one trusted for its kid: a key withdrawn
        from JWKS (or a service key no longer trusted) sends the token through full
        verification again, which then refuses it.
        """
        hit = self._verified.get(token)
        if hit is not None:
            principal, exp, kid, key = hit
            if self.clock() < exp and await self._current_key(principal, kid) is key:
                self._verified.move_to_end(token)
                return principal
            self._verified.pop(token, None)
        principal, exp, kid, key = await self._verify_uncached(token)
        if self.cache_size > 0:
            self._verified[token] = (principal, exp, kid, key)
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return principal

    async def _current_key(self, principal: Principal, kid: str) -> Ed25519PublicKey | None:
        if principal.is_service:
            return self.trusted_services.get(kid)
        if self.jwks is None:
            return None
        return await self.jwks.get(kid)

    async def _verify_uncached(self, token: str) -> tuple[Principal, float, str, Ed25519PublicKey]:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("malformed bearer token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("malformed bearer token") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm must be {ALGORITHM}")
        iss = unverified.get("iss")
        if isinstance(iss, str) and iss.startswith(SERVICE_PREFIX):
            return self._verify_service(token, iss)
        return await self._verify_user(token, header.get("kid"))

    def _decode(
        self, token: str, key: Ed25519PublicKey, *, issuer: str, audience: str
    ) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=issuer,
                audience=audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired; log in again") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token is not meant for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer is not trusted") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token is invalid: {exc}") from None

    def _verify_service(
        self, token: str, iss: str
    ) -> tuple[Principal, float, str, Ed25519PublicKey]:
        name = iss[len(SERVICE_PREFIX) :]
        key = self.trusted_services.get(name)
        if key is None:
            # The same answer as a forged signature under a trusted name: naming the service
            # would let anyone list, one guess at a time, whom this callee trusts.
            log.warning("token from an untrusted service %r", name[:64])
            raise Unauthenticated("token signature is invalid")
        claims = self._decode(token, key, issuer=iss, audience=self.service_name)
        if claims["sub"] != iss:
            raise Unauthenticated("service token subject must equal its issuer")
        return Principal("service", name), float(claims["exp"]), name, key

    async def _verify_user(
        self, token: str, kid: Any
    ) -> tuple[Principal, float, str, Ed25519PublicKey]:
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise Unauthenticated("token has no key id (kid)")
        if self.jwks is None:
            raise Unauthenticated("user tokens are not accepted here")
        key = await self.jwks.get(kid)
        if key is None:
            raise Unauthenticated("token was signed with an unknown key")
        claims = self._decode(token, key, issuer=self.issuer, audience=self.audience)
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or sub.startswith(SERVICE_PREFIX):
            raise Unauthenticated("token subject is invalid")
        return Principal("user", sub), float(claims["exp"]), kid, key


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_HEADER:
            if not isinstance(value, str):
                return ""
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


# A user over its in-flight cap is told to retry about when one of its calls will be done.
USER_RETRY_AFTER_S = 0.1


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires a valid bearer token on every unary method except `public_methods`.

    Failures are raised as platform errors inside the handler, so the observability
    interceptor (outermost) logs them and answers UNAUTHENTICATED / UNAVAILABLE.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        public_methods: Collection[str] = (),
        *,
        max_in_flight_per_user: int | None = None,
        failure_limit: TokenFailureLimit | None = None,
    ) -> None:
        self._verifier = verifier
        # A token that fails verification costs a full check (parsing and the signature);
        # an address that keeps sending them has its new tokens refused unchecked for a
        # while. Tokens this process verified before skip the limit, so its users behind the
        # same address (a NAT) keep working with the tokens they hold.
        self._failures = (
            None
            if failure_limit is None
            else RateLimiter(failure_limit.burst, failure_limit.per_second)
        )
        self._public = frozenset(public_methods)
        # One account at high concurrency must not take the calls other users need: each
        # user principal may have at most this many calls in this process's handlers, and
        # is refused beyond (services acting for users are not counted).
        self._max_per_user = max_in_flight_per_user
        self._in_flight: Counter[str] = Counter()

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES):
            return handler
        inner = unary_behavior(handler)
        if inner is None:
            # Only health and reflection stream today; an unguarded stream would be a hole,
            # so until one is needed they are refused (UNIMPLEMENTED).
            return None
        token = bearer_token(handler_call_details.invocation_metadata)
        verifier = self._verifier

        async def authenticated(request: Any, context: Context) -> Any:
            if token is None:
                raise Unauthenticated(
                    "authentication required: send `authorization: Bearer <token>` metadata"
                )
            if token == "":
                raise Unauthenticated("authorization metadata must be `Bearer <token>`")
            failures, address = self._failures, None
            if failures is not None and not verifier.remembers(token):
                address = client_address(context.peer())
                wait = failures.wait(address)
                if wait is not None:
                    await abort_retry_later(context, TOO_MANY_INVALID_TOKENS, wait)
            try:
                principal = await verifier.verify(token)
            except Unauthenticated:
                if failures is not None and address is not None:
                    failures.take(address)
                raise
            cap = None if principal.is_service else self._max_per_user
            if cap is not None:
                if self._in_flight[principal.subject] >= cap:
                    await abort_retry_later(
                        context, "too many calls in flight for this user", USER_RETRY_AFTER_S
                    )
                self._in_flight[principal.subject] += 1
            reset = principal_var.set(principal)
            try:
                return await inner(request, context)
            finally:
                principal_var.reset(reset)
                if cap is not None:
                    self._in_flight[principal.subject] -= 1
                    if not self._in_flight[principal.subject]:
                        del self._in_flight[principal.subject]

        return grpc.unary_unary_rpc_method_handler(
            authenticated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
