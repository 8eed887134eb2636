"""Bearer-token authentication shared by the services that verify callers.

Two kinds of callers carry an EdDSA (Ed25519) JWT in `authorization: Bearer <jwt>`:

* users, with an access token from authsvc (`iss`=AUTH_ISSUER, `aud`=AUTH_AUDIENCE, `kid`
  names one of authsvc's keys, fetched from its GetJwks RPC and cached here);
* services, with a short-lived token each calling service signs with its own private key
  (SERVICE_KEY_FILE): `iss`=`sub`=`service:<name>`, `aud`=<callee>. The callee trusts the
  public keys in TRUSTED_SERVICE_KEYS (a directory of `<name>.pem` files), nothing else.

The interceptor verifies the token and puts the Principal in a contextvar for handlers.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auth.v1 import auth_pb2
from libs.platform import config as c
from libs.platform.errors import PermissionDenied, Unauthenticated, Unavailable
from libs.platform.rpc_types import Context, Continuation, Handler, unary_behavior

log = logging.getLogger(__name__)

AUTHORIZATION_HEADER = "authorization"
SERVICE_PREFIX = "service:"
ALGORITHM = "EdDSA"
# A real token is well under 1 KiB; anything far larger is not worth parsing.
MAX_TOKEN_LENGTH = 4096
# Tolerated clock difference between the signer and this host.
LEEWAY_SECONDS = 30
SERVICE_TOKEN_TTL_SECONDS = 120
# Verified tokens remembered per process. Clients resend one token for its whole life, so a
# few thousand entries cover every active caller; an entry is ~300 bytes.
VERIFIED_CACHE_SIZE = 4096

# Methods that never need a token: health checks and reflection are for infrastructure.
ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class KeyFileError(Exception):
    """A key file is missing, unreadable or not Ed25519."""


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "service"]
    subject: str  # user id, or service name (without the "service:" prefix)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    principal = principal_var.get()
    if principal is None:
        # Only reachable if a handler runs without the interceptor: fail closed.
        raise Unauthenticated("authentication required")
    return principal


def require_user_or_service(user_id: str) -> Principal:
    """Allow the user `user_id` itself, or any trusted service acting for a user."""
    principal = current_principal()
    if principal.is_service or principal.subject == user_id:
        return principal
    raise PermissionDenied("you may only access your own account and payments")


def require_service(allowed: Collection[str] | None = None) -> Principal:
    """Internal RPCs: user tokens are refused; `allowed` narrows which services may call."""
    principal = current_principal()
    if not principal.is_service:
        raise PermissionDenied("this method is for internal services only")
    if allowed is not None and principal.subject not in allowed:
        raise PermissionDenied(f"service {principal.subject!r} may not call this method")
    return principal


# ---------------------------------------------------------------------------- keys


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


# ---------------------------------------------------------------------------- service tokens


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
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = [
            (k, v)
            for k, v in (client_call_details.metadata or ())
            if k.lower() != AUTHORIZATION_HEADER
        ]
        metadata.append((AUTHORIZATION_HEADER, f"Bearer {self._signer.token_for(self._audience)}"))
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


# ---------------------------------------------------------------------------- JWKS cache

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


# ---------------------------------------------------------------------------- verification


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


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires a valid bearer token on every unary method except `public_methods`.

    Failures are raised as platform errors inside the handler, so the observability
    interceptor (outermost) logs them and answers UNAUTHENTICATED / UNAVAILABLE.
    """

    def __init__(self, verifier: TokenVerifier, public_methods: Collection[str] = ()) -> None:
        self._verifier = verifier
        self._public = frozenset(public_methods)

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
            principal = await verifier.verify(token)
            reset = principal_var.set(principal)
            try:
                return await inner(request, context)
            finally:
                principal_var.reset(reset)

        return grpc.unary_unary_rpc_method_handler(
            authenticated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


JWKS_DEADLINE_SECONDS = 2.0


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


# ---------------------------------------------------------------------------- settings, wiring


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
    authsvc_addr: str = c.address("localhost:50053")
    auth_issuer: str = c.setting("authsvc")
    auth_audience: str = c.setting("micro")
    jwks_refresh_seconds: float = c.setting(300.0, min=1.0)
    jwks_min_refresh_seconds: float = c.setting(10.0, min=0.0)

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
