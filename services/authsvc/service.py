"""auth.v1.AuthService: login via usersvc, JWT issuing, refresh-token rotation."""

from __future__ import annotations

import datetime as dt

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform import clients
from libs.platform.errors import Unauthenticated, Violations
from libs.platform.protoutil import timestamp
from services.authsvc.store import RefreshTokenStore, RotateOutcome
from services.authsvc.tokens import TokenIssuer, hash_refresh_token, new_refresh_token
from user.v1 import user_pb2, user_pb2_grpc

BAD_CREDENTIALS = "invalid email or password"
MAX_EMAIL = 254
MAX_PASSWORD = 128
MAX_REFRESH_TOKEN = 256

_REFRESH_MESSAGES = {
    RotateOutcome.UNKNOWN: "refresh token is invalid",
    RotateOutcome.EXPIRED: "refresh token has expired; log in again",
    RotateOutcome.REVOKED: "refresh token has been revoked; log in again",
    RotateOutcome.REUSED: "refresh token was already used; the session has been revoked, "
    "log in again",
}


def _refresh_token_arg(value: str) -> str:
    bad = Violations()
    if not value:
        bad.add("refresh_token", "is required")
    elif len(value) > MAX_REFRESH_TOKEN:
        bad.add("refresh_token", f"must be at most {MAX_REFRESH_TOKEN} characters")
    bad.raise_if_any()
    return value


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        store: RefreshTokenStore,
        users: user_pb2_grpc.UserServiceStub,
        issuer: TokenIssuer,
        *,
        users_timeout: float,
        refresh_ttl_seconds: int,
    ) -> None:
        self._store = store
        self._users = users
        self._issuer = issuer
        self._users_timeout = users_timeout
        self._refresh_ttl = dt.timedelta(seconds=refresh_ttl_seconds)

    async def Login(  # noqa: N802 - gRPC method names
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        bad = Violations()
        email = request.email.strip()
        if not email:
            bad.add("email", "is required")
        elif len(email) > MAX_EMAIL:
            bad.add("email", f"must be at most {MAX_EMAIL} characters")
        if not request.password:
            bad.add("password", "is required")
        elif len(request.password) > MAX_PASSWORD:
            bad.add("password", f"must be at most {MAX_PASSWORD} characters")
        bad.raise_if_any()
        try:
            verified = await clients.call(
                self._users.VerifyCredentials,
                user_pb2.VerifyCredentialsRequest(email=email, password=request.password),
                dependency="usersvc",
                deadline=self._users_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                raise Unauthenticated(BAD_CREDENTIALS) from None
            raise
        access = self._issuer.issue(verified.user_id)
        refresh = new_refresh_token()
        await self._store.create(
            hash_refresh_token(refresh),
            verified.user_id,
            None,
            dt.datetime.now(dt.UTC) + self._refresh_ttl,
        )
        return auth_pb2.LoginResponse(
            token=access.token, refresh_token=refresh, expires_at=timestamp(access.expires_at)
        )

    async def RefreshToken(  # noqa: N802
        self, request: auth_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RefreshTokenResponse:
        old = _refresh_token_arg(request.refresh_token)
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
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        token = _refresh_token_arg(request.refresh_token)
        # Revoking the whole family also kills any successor of an older token.
        await self._store.revoke_family_of(hash_refresh_token(token))
        return auth_pb2.LogoutResponse()
