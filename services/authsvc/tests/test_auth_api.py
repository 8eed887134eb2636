from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.testing.grpc_errors import field_violations
from libs.platform.testing.net import free_port
from services.authsvc import app
from services.authsvc.keys import SigningKeyError, key_id, load_signing_key

from .conftest import make_settings

PASSWORD = "correct horse"


async def expect_error(coro, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    assert info.value.code() == code, info.value.details()
    return info.value


async def login(stub, email: str = "ada@example.com", password: str = PASSWORD):
    return await stub.Login(auth_pb2.LoginRequest(email=email, password=password))


def decode(token: str, authsvc) -> dict[str, Any]:
    return jwt.decode(
        token,
        authsvc.signing_key.public_key,
        algorithms=["EdDSA"],
        audience="micro",
        issuer="authsvc",
    )


async def test_login_issues_verifiable_jwt(stub, users, authsvc) -> None:
    uid = users.add("ada@example.com", PASSWORD)
    resp = await login(stub)
    claims = decode(resp.token, authsvc)
    assert claims["sub"] == uid
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]
    assert jwt.get_unverified_header(resp.token) == {
        "alg": "EdDSA",
        "typ": "JWT",
        "kid": authsvc.signing_key.kid,
    }
    assert resp.expires_at.ToDatetime(tzinfo=dt.UTC).timestamp() == claims["exp"]
    assert resp.refresh_token
    # Only the digest is stored.
    stored = await authsvc.pool.fetch("SELECT token_hash, user_id FROM refresh_tokens")
    assert [r["token_hash"] for r in stored] == [
        hashlib.sha256(resp.refresh_token.encode()).hexdigest()
    ]
    expires = await authsvc.pool.fetchval("SELECT expires_at - created_at FROM refresh_tokens")
    assert abs(expires - dt.timedelta(days=30)) < dt.timedelta(seconds=5)


async def test_bad_credentials_same_message(stub, users) -> None:
    users.add("ada@example.com", PASSWORD)
    wrong = await expect_error(login(stub, password="nope nope"), grpc.StatusCode.UNAUTHENTICATED)
    unknown = await expect_error(
        login(stub, email="who@example.com"), grpc.StatusCode.UNAUTHENTICATED
    )
    assert wrong.details() == unknown.details() == "invalid email or password"


async def test_login_requires_fields(stub) -> None:
    err = await expect_error(login(stub, "", ""), grpc.StatusCode.INVALID_ARGUMENT)
    assert set(field_violations(err)) == {"email", "password"}
    err = await expect_error(login(stub, password="x" * 129), grpc.StatusCode.INVALID_ARGUMENT)
    assert "password" in field_violations(err)


async def test_refresh_rotates(stub, users, authsvc) -> None:
    uid = users.add("ada@example.com", PASSWORD)
    first = await login(stub)
    second = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    assert second.refresh_token != first.refresh_token
    assert decode(second.token, authsvc)["sub"] == uid
    third = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=second.refresh_token)
    )
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)
    families = await authsvc.pool.fetchval("SELECT count(DISTINCT family_id) FROM refresh_tokens")
    assert families == 1


async def test_reuse_revokes_family(stub, users, authsvc) -> None:
    users.add("ada@example.com", PASSWORD)
    first = await login(stub)
    second = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "already used" in err.details()
    # The legitimate successor is dead too: the whole family is revoked.
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=second.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "revoked" in err.details()
    live = await authsvc.pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"
    )
    assert live == 0


async def test_concurrent_refresh_of_one_token_rotates_once(stub, users) -> None:
    users.add("ada@example.com", PASSWORD)
    first = await login(stub)
    results = await asyncio.gather(
        *(
            stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 1
    assert all(
        e.code() == grpc.StatusCode.UNAUTHENTICATED
        for e in results
        if isinstance(e, grpc.aio.AioRpcError)
    )


async def test_other_families_survive_reuse(stub, users) -> None:
    users.add("ada@example.com", PASSWORD)
    a = await login(stub)
    b = await login(stub)
    await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=a.refresh_token))
    await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=a.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=b.refresh_token))


async def test_refresh_errors(stub, users, authsvc) -> None:
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "refresh_token" in field_violations(err)
    await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token="x" * 300)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token="never-issued")),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert err.details() == "refresh token is invalid"
    users.add("ada@example.com", PASSWORD)
    resp = await login(stub)
    await authsvc.pool.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 s'")
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=resp.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "expired" in err.details()


async def test_logout_revokes_and_is_idempotent(stub, users) -> None:
    users.add("ada@example.com", PASSWORD)
    resp = await login(stub)
    rotated = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=resp.refresh_token)
    )
    for _ in range(2):
        await stub.Logout(auth_pb2.LogoutRequest(refresh_token=rotated.refresh_token))
    await stub.Logout(auth_pb2.LogoutRequest(refresh_token="unknown-token"))
    err = await expect_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=rotated.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "revoked" in err.details()
    await expect_error(stub.Logout(auth_pb2.LogoutRequest()), grpc.StatusCode.INVALID_ARGUMENT)


async def test_usersvc_down_is_unavailable(database_url) -> None:
    dead = free_port()  # nothing listens there
    running = await app.start(make_settings(database_url, dead))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            err = await expect_error(
                auth_pb2_grpc.AuthServiceStub(ch).Login(
                    auth_pb2.LoginRequest(email="a@example.com", password=PASSWORD)
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
            # An anonymous caller learns to retry, not which internal service failed.
            assert err.details() == "login is temporarily unavailable; retry later"
        # Unreachable: no password was checked, so the attempt is not counted.
        assert await running.pool.fetchval("SELECT count(*) FROM login_failures") == 0
    finally:
        await running.stop(0)


def test_signing_key_from_file(tmp_path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    loaded = load_signing_key(str(path))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert loaded.kid == hashlib.sha256(raw).hexdigest()[:16] == key_id(key.public_key())
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(SigningKeyError, match="cannot load"):
        load_signing_key(str(bad))
    with pytest.raises(SigningKeyError, match="cannot load"):
        load_signing_key(str(tmp_path / "missing.pem"))


def test_ephemeral_key_warns(caplog) -> None:
    with caplog.at_level("WARNING"):
        key = load_signing_key(None)
    assert len(key.kid) == 16
    assert "ephemeral" in caplog.text
