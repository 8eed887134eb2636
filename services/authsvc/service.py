"""auth.v1.AuthService: login via usersvc, JWT issuing, refresh-token rotation."""

from __future__ import annotations

import datetime as dt
import logging
import re

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform import clients, emails
from libs.platform import validation as v
from libs.platform.admission import RateLimiter, abort_retry_later, client_address
from libs.platform.auth.keys import jwk_x
from libs.platform.auth.principals import require_service
from libs.platform.errors import InvalidArgument, Unauthenticated, Unavailable
from libs.platform.protoutil import timestamp
from libs.platform.rpc_types import Context
from services.authsvc.devices import DeviceTokens
from services.authsvc.keys import KeyRing
from services.authsvc.store import RefreshTokenStore, RotateOutcome
from services.authsvc.throttle import Attempt, LoginThrottle
from services.authsvc.tokens import (
    REFRESH_TOKEN_CHARS,
    TokenIssuer,
    hash_refresh_token,
    new_refresh_token,
)
from user.v1 import user_pb2, user_pb2_grpc

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "invalid email or password"
UNREACHABLE = grpc.StatusCode.UNAVAILABLE
LOGIN_UNAVAILABLE = "login is temporarily unavailable; retry later"
MAX_PASSWORD = 128
MAX_REFRESH_TOKEN = 256
REFRESH_TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{REFRESH_TOKEN_CHARS}}}")
# Only usersvc, which owns passwords and accounts, may end a user's sessions.
REVOKE_SESSIONS_CALLERS = frozenset({"usersvc"})

_REFRESH_MESSAGES = {
    RotateOutcome.UNKNOWN: "refresh token is invalid",
    RotateOutcome.EXPIRED: "refresh token has expired; log in again",
    RotateOutcome.REVOKED: "refresh token has been revoked; log in again",
    RotateOutcome.REUSED: "refresh token was already used; the session has been revoked, "
    "log in again",
}


def _refresh_token_arg(value: str) -> str:
    if not value:
        raise InvalidArgument.field("refresh_token", "is required")
    if len(value) > MAX_REFRESH_TOKEN:
        raise InvalidArgument.field(
            "refresh_token", f"must be at most {MAX_REFRESH_TOKEN} characters"
        )
    return v.no_nul(value, "refresh_token")


def _could_be_ours(token: str) -> bool:
    """Whether `token` has the shape new_refresh_token() gives: anything else is answered
    without a database lookup, so junk tokens cost a flood nothing but this check."""
    return REFRESH_TOKEN_SHAPE.fullmatch(token) is not None


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        store: RefreshTokenStore,
        users: user_pb2_grpc.UserServiceAsyncStub,
        issuer: TokenIssuer,
        *,
        users_timeout: float,
        refresh_ttl_seconds: int,
        keys: KeyRing,
        throttle: LoginThrottle,
        devices: DeviceTokens,
        token_calls: RateLimiter,
    ) -> None:
        self._store = store
        self._users = users
        self._issuer = issuer
        self._users_timeout = users_timeout
        self._refresh_ttl = dt.timedelta(seconds=refresh_ttl_seconds)
        self._keys = keys
        self._throttle = throttle
        self._devices = devices
        self._token_calls = token_calls

    async def Login(  # noqa: N802 - gRPC method names
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        with v.Violations() as bad:
            email = bad.check(emails.parse, request.email)
            if not request.password:
                bad.add("password", "is required")
            elif len(request.password) > MAX_PASSWORD:
                bad.add("password", f"must be at most {MAX_PASSWORD} characters")
        device = self._devices.device_of(request.device_token, email.canonical)
        attempt = Attempt(email.canonical, client_address(context.peer()), device)
        admission = await self._throttle.admit(attempt)
        if admission.retry_after is not None:
            await abort_retry_later(context, "too many login attempts", admission.retry_after)
        # The attempt is counted from here on, whatever becomes of it: a check that times
        # out or is refused under load counts like a wrong password, or a flood of slow
        # guesses would never spend its budget (usersvc README, "Logins under a flood").
        try:
            verified = await clients.call(
                self._users.VerifyCredentials,
                user_pb2.VerifyCredentialsRequest(
                    email=email.address,
                    password=request.password,
                    trusted_device=device is not None,
                    known_address=admission.known_address,
                    caller_recent_attempts=min(admission.address_attempts, 2**32 - 1),
                ),
                dependency="usersvc",
                deadline=self._users_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT or (
                exc.code() == grpc.StatusCode.UNAUTHENTICATED and exc.details() == BAD_CREDENTIALS
            ):
                raise Unauthenticated(BAD_CREDENTIALS) from None
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                # usersvc refused *us*: a deployment problem, not the caller's attempt.
                await self._throttle.forgive(admission)
                log.error("usersvc refused authsvc's service token: %s", exc.details())
                raise Unavailable(LOGIN_UNAVAILABLE) from None
            raise
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, grpc.aio.AioRpcError) and cause.code() == UNREACHABLE:
                # usersvc could not be reached at all (down, restarting): no check ran, and
                # a flood cannot cause this. Timeouts and refusals for load stay counted.
                await self._throttle.forgive(admission)
            if isinstance(exc, Unavailable):
                # Login is anonymous: the caller learns to retry, not which internal
                # service failed how; the log keeps that.
                log.warning("login could not check the password: %s", exc)
                raise Unavailable(LOGIN_UNAVAILABLE) from None
            raise
        refresh = new_refresh_token()
        try:
            opened = await self._store.create(
                hash_refresh_token(refresh),
                verified.user_id,
                None,
                dt.datetime.now(dt.UTC) + self._refresh_ttl,
                verified.credentials_version,
            )
        except Exception:
            await self._throttle.forgive(admission)
            raise
        if not opened:
            # The password was changed (or the account deleted) while this login checked
            # the old one: as wrong as any other stale password, and counted like one.
            raise Unauthenticated(BAD_CREDENTIALS)
        # What the success proves: this account's password, from this address.
        proven = Attempt(emails.canonical(verified.email), attempt.address)
        await self._throttle.succeeded(admission, proven)
        access = self._issuer.issue(verified.user_id)
        return auth_pb2.LoginResponse(
            token=access.token,
            refresh_token=refresh,
            expires_at=timestamp(access.expires_at),
            # The same device keeps its id; a login that proved another spelling's account
            # gets a new one.
            device_token=self._devices.issue(
                proven.account, device if proven.account == attempt.account else None
            ),
        )

    async def _limit_token_calls(self, context: Context) -> None:
        # Anonymous and each a database round trip: limited per address, like sign-ups.
        wait = self._token_calls.take(client_address(context.peer()))
        if wait is not None:
            await abort_retry_later(context, "too many token calls from your address", wait)

    async def RefreshToken(  # noqa: N802
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        await self._limit_token_calls(context)
        old = _refresh_token_arg(request.refresh_token)
        if not _could_be_ours(old):
            raise Unauthenticated(_REFRESH_MESSAGES[RotateOutcome.UNKNOWN])
        new = new_refresh_token()
        result = await self._store.rotate(
            hash_refresh_token(old),
            hash_refresh_token(new),
            dt.datetime.now(dt.UTC) + self._refresh_ttl,
        )
        if result.outcome is not RotateOutcome.ROTATED or result.user_id is None:
            raise Unauthenticated(_REFRESH_MESSAGES[result.outcome])
        access = self._issuer.issue(result.user_id)
        return auth_pb2.RefreshTokenResponse(
            token=access.token, refresh_token=new, expires_at=timestamp(access.expires_at)
        )

    async def Logout(  # noqa: N802
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        await self._limit_token_calls(context)
        token = _refresh_token_arg(request.refresh_token)
        if _could_be_ours(token):  # another shape was never issued: nothing to revoke
            # Revoking the whole family also kills any successor of an older token.
            await self._store.revoke_family_of(hash_refresh_token(token))
        return auth_pb2.LogoutResponse()

    async def GetJwks(  # noqa: N802
        self, request: auth_pb2.GetJwksRequest, context: Context
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(
            keys=[
                auth_pb2.Jwk(
                    kty="OKP", crv="Ed25519", x=jwk_x(key), kid=kid, alg="EdDSA", use="sig"
                )
                for kid, key in sorted(self._keys.public_keys().items())
            ]
        )

    async def RevokeUserSessions(  # noqa: N802
        self, request: auth_pb2.RevokeUserSessionsRequest, context: Context
    ) -> auth_pb2.RevokeUserSessionsResponse:
        require_service(REVOKE_SESSIONS_CALLERS)
        user_id = v.uuid_str(request.user_id, "user_id")
        if request.min_credentials_version < 0:
            raise InvalidArgument.field("min_credentials_version", "must not be negative")
        revoked = await self._store.revoke_user(
            user_id, request.min_credentials_version, request.user_deleted
        )
        log.info(
            "user sessions revoked",
            extra={"user_id": user_id, "revoked_tokens": revoked, "deleted": request.user_deleted},
        )
        return auth_pb2.RevokeUserSessionsResponse(revoked_tokens=revoked)
