"""RevokeUserSessions: who may call it, and that revoked sessions stay dead (finding 3)."""

from __future__ import annotations

import uuid

import grpc

from auth.v1 import auth_pb2
from libs.platform.testing.security import bearer, expect_refused

PASSWORD = "correct horse"
UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def revoke(user_id: str, min_version: int = 0, deleted: bool = False):
    return auth_pb2.RevokeUserSessionsRequest(
        user_id=user_id, min_credentials_version=min_version, user_deleted=deleted
    )


async def login(stub, email: str = "ada@example.com", password: str = PASSWORD):
    return await stub.Login(auth_pb2.LoginRequest(email=email, password=password))


async def refresh(stub, token: str):
    return await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token))


async def test_only_usersvc_may_revoke_sessions(stub, users, service_keys) -> None:
    uid = users.add("ada@example.com", PASSWORD)
    session = await login(stub)
    request = revoke(uid, 99, deleted=True)
    await expect_refused(stub.RevokeUserSessions(request), UNAUTH)
    # A user's own access token is not a service identity.
    await expect_refused(stub.RevokeUserSessions(request, metadata=bearer(session.token)), UNAUTH)
    await expect_refused(
        stub.RevokeUserSessions(request, metadata=bearer(service_keys.token("rogue", "authsvc"))),
        UNAUTH,
    )
    # A trusted service, but not the one that owns accounts.
    await expect_refused(
        stub.RevokeUserSessions(
            request, metadata=bearer(service_keys.token("paymentsvc", "authsvc"))
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # usersvc's token for another audience is refused too.
    await expect_refused(
        stub.RevokeUserSessions(request, metadata=bearer(service_keys.token("usersvc", "usersvc"))),
        UNAUTH,
    )
    await refresh(stub, session.refresh_token)  # nothing was revoked


async def test_password_change_revokes_older_sessions_only(stub, users, service_keys) -> None:
    as_usersvc = bearer(service_keys.token("usersvc", "authsvc"))
    uid = users.add("ada@example.com", PASSWORD)
    a = await login(stub)
    b = await login(stub)
    b2 = await refresh(stub, b.refresh_token)
    # usersvc changed the password (credentials version 1 -> 2) and says so.
    users.change_password("ada@example.com", "new password!")
    done = await stub.RevokeUserSessions(revoke(uid, 2), metadata=as_usersvc)
    assert done.revoked_tokens == 3  # a, b (already rotated) and b's successor b2
    for token in (a.refresh_token, b2.refresh_token):
        err = await expect_refused(refresh(stub, token), UNAUTH)
        assert "revoked" in err.details()
    fresh = await login(stub, password="new password!")
    # Delivered again, or late: sessions opened with the new password stay.
    again = await stub.RevokeUserSessions(revoke(uid, 2), metadata=as_usersvc)
    assert again.revoked_tokens == 0
    older = await stub.RevokeUserSessions(revoke(uid, 1), metadata=as_usersvc)
    assert older.revoked_tokens == 0
    await refresh(stub, fresh.refresh_token)


async def test_a_login_that_checked_the_old_password_opens_no_session(
    stub, users, service_keys, authsvc
) -> None:
    """The race: usersvc verified the old password, then the change and its revocation
    landed before authsvc stored the session. The floor refuses it."""
    uid = users.add("ada@example.com", PASSWORD)
    await stub.RevokeUserSessions(
        revoke(uid, 2), metadata=bearer(service_keys.token("usersvc", "authsvc"))
    )
    # The fake still answers with version 1: as if it checked just before the change.
    err = await expect_refused(login(stub), UNAUTH)
    assert err.details() == "invalid email or password"
    assert await authsvc.pool.fetchval("SELECT count(*) FROM refresh_tokens") == 0


async def test_deleted_user_has_no_sessions_left(stub, users, service_keys) -> None:
    uid = users.add("ada@example.com", PASSWORD)
    session = await login(stub)
    rotated = await refresh(stub, session.refresh_token)
    done = await stub.RevokeUserSessions(
        revoke(uid, 2, deleted=True), metadata=bearer(service_keys.token("usersvc", "authsvc"))
    )
    assert done.revoked_tokens == 2  # the rotated token and its successor
    await expect_refused(refresh(stub, rotated.refresh_token), UNAUTH)
    # Even the version the (fake) account still reports opens nothing.
    await expect_refused(login(stub), UNAUTH)


async def test_revoke_sessions_validates_its_arguments(stub, service_keys) -> None:
    as_usersvc = bearer(service_keys.token("usersvc", "authsvc"))
    for request in (revoke("not-a-uuid"), revoke(str(uuid.uuid4()), -1)):
        await expect_refused(
            stub.RevokeUserSessions(request, metadata=as_usersvc), grpc.StatusCode.INVALID_ARGUMENT
        )
    # An unknown user: nothing to revoke, and its floor is recorded all the same.
    done = await stub.RevokeUserSessions(revoke(str(uuid.uuid4()), 5), metadata=as_usersvc)
    assert done.revoked_tokens == 0
