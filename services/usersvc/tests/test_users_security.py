"""Authentication, authorization and hostile input against a real usersvc (real PostgreSQL).

authsvc is replaced by a JWKS server that the test controls (FakeJwksServer), so keys can be
rotated and tokens tampered with; the real authsvc + usersvc pair is covered in tests/e2e.
"""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from libs.platform.testing.security import (
    HOSTILE,
    SQL_METACHARACTERS,
    ServiceKeys,
    bearer,
    expect_refused,
    make_certs,
)
from services.usersvc import app
from user.v1 import user_pb2, user_pb2_grpc

from .conftest import make_settings

PASSWORD = "correct horse"
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def signup(anon, email: str = "ada@example.com") -> str:
    resp = await anon.CreateUser(user_pb2.CreateUserRequest(email=email, password=PASSWORD))
    return resp.user_id


def tampered_tokens(jwks, service_keys: ServiceKeys, uid: str) -> dict[str, str]:
    now = int(time.time())
    valid = jwks.mint(uid)
    header, payload, _sig = valid.split(".")
    other = Ed25519PrivateKey.generate()
    unsigned = jwt.encode(
        {"iss": "authsvc", "aud": "micro", "sub": uid, "iat": now, "exp": now + 60},
        None,
        algorithm="none",
    )
    return {
        "alg none": unsigned,
        "wrong key, real kid": jwks.mint(uid, key=other),
        "unknown kid": jwks.mint(uid, kid="not-a-real-kid", key=other),
        "expired": jwks.mint(uid, ttl=-3600),
        "wrong audience": jwks.mint(uid, aud="somebody-else"),
        "wrong issuer": jwks.mint(uid, iss="evil"),
        "no exp": jwt.encode(
            {"iss": "authsvc", "aud": "micro", "sub": uid, "iat": now},
            jwks.keys[jwks.active],
            algorithm="EdDSA",
            headers={"kid": jwks.active},
        ),
        "signature swapped": f"{header}.{payload}.{jwks.mint('x').split('.')[2]}",
        "garbage": "not.a.jwt",
        "empty": "",
        "huge": "a" * 5000,
        "untrusted service": service_keys.token("rogue", "usersvc"),
        "service token for another audience": service_keys.token("authsvc", "paymentsvc"),
        "HS256 with public key as secret": jwt.encode(
            {"iss": "authsvc", "aud": "micro", "sub": uid, "iat": now, "exp": now + 60},
            "a-shared-secret-an-attacker-might-guess-0123456789",
            algorithm="HS256",
            headers={"kid": jwks.active},
        ),
    }


async def test_valid_user_token_reads_own_account(anon, jwks) -> None:
    uid = await signup(anon)
    got = await anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(jwks.mint(uid)))
    assert got.user_id == uid


async def test_tampered_and_missing_tokens_are_unauthenticated(anon, jwks, service_keys) -> None:
    uid = await signup(anon)
    request = user_pb2.GetUserRequest(user_id=uid)
    cases = tampered_tokens(jwks, service_keys, uid)
    for name, token in cases.items():
        err = await expect_refused(anon.GetUser(request, metadata=bearer(token)), UNAUTH)
        assert err.details(), name
    err = await expect_refused(anon.GetUser(request), UNAUTH)
    assert "authorization: Bearer" in err.details()
    await expect_refused(anon.GetUser(request, metadata=[("authorization", "Basic YTpi")]), UNAUTH)
    # The service is unharmed: the genuine token still works afterwards.
    await anon.GetUser(request, metadata=bearer(jwks.mint(uid)))
    assert len(cases) >= 14


async def test_user_cannot_touch_another_users_account(anon, stub, jwks) -> None:
    ann = await signup(anon, "ann@example.com")
    bob = await signup(anon, "bob@example.com")
    as_ann = bearer(jwks.mint(ann))
    await expect_refused(
        anon.GetUser(user_pb2.GetUserRequest(user_id=bob), metadata=as_ann), DENIED
    )
    await expect_refused(
        anon.UpdateUser(
            user_pb2.UpdateUserRequest(user_id=bob, display_name="pwned"), metadata=as_ann
        ),
        DENIED,
    )
    await expect_refused(
        anon.DeleteUser(user_pb2.DeleteUserRequest(user_id=bob), metadata=as_ann), DENIED
    )
    await expect_refused(anon.ListUsers(user_pb2.ListUsersRequest(), metadata=as_ann), DENIED)
    # Batch reads are for services, even of one's own account.
    for ids in ([bob], [ann]):
        await expect_refused(
            anon.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=ids), metadata=as_ann),
            DENIED,
        )
    got = await stub.GetUser(user_pb2.GetUserRequest(user_id=bob))
    assert got.display_name == ""  # untouched
    updated = await anon.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=ann, display_name="Ann"), metadata=as_ann
    )
    assert updated.user.display_name == "Ann"
    deleted = await anon.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=ann, current_password=PASSWORD), metadata=as_ann
    )
    assert deleted.success


async def test_verify_credentials_only_for_authsvc(anon, jwks, service_keys) -> None:
    uid = await signup(anon)
    request = user_pb2.VerifyCredentialsRequest(email="ada@example.com", password=PASSWORD)
    await expect_refused(anon.VerifyCredentials(request), UNAUTH)
    await expect_refused(anon.VerifyCredentials(request, metadata=bearer(jwks.mint(uid))), DENIED)
    payments = bearer(service_keys.token("paymentsvc", "usersvc"))
    await expect_refused(anon.VerifyCredentials(request, metadata=payments), DENIED)
    ok = await anon.VerifyCredentials(
        request, metadata=bearer(service_keys.token("authsvc", "usersvc"))
    )
    assert ok.user_id == uid
    # A service may read any user (paymentsvc checks that payers exist).
    got = await anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=payments)
    assert got.user_id == uid


async def test_rotated_key_is_picked_up_without_restart(anon, jwks, usersvc) -> None:
    uid = await signup(anon)
    old_kid = jwks.active
    old_token = jwks.mint(uid)
    await anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(old_token))
    fetches = jwks.calls
    new_kid = jwks.rotate()
    assert new_kid != old_kid
    new_token = jwks.mint(uid)
    got = await anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(new_token))
    assert got.user_id == uid
    assert jwks.calls == fetches + 1  # one refresh, triggered by the unknown kid
    # The retired key still verifies while authsvc publishes it...
    await anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(old_token))
    # ...and stops once it is withdrawn and the cache refreshes.
    del jwks.keys[old_kid]
    usersvc.verifier.jwks.refresh_seconds = 0
    await expect_refused(
        anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(old_token)),
        UNAUTH,
        hostile=False,
    )


async def test_unknown_kid_refresh_is_rate_limited(database_url, jwks, service_keys) -> None:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        jwks_min_refresh_seconds=60.0,
    )
    running = await app.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            anon = user_pb2_grpc.UserServiceStub(ch)
            uid = await signup(anon)
            other = Ed25519PrivateKey.generate()
            for i in range(20):
                forged = jwks.mint(uid, kid=f"guess-{i}", key=other)
                await expect_refused(
                    anon.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=bearer(forged)),
                    UNAUTH,
                )
            assert jwks.calls == 1  # the first fetch only; guesses do not reach authsvc
    finally:
        await running.stop(0)


async def test_sql_metacharacters_in_every_string_field(anon, stub, jwks) -> None:
    accepted = 0
    for i, text in enumerate(SQL_METACHARACTERS):
        # display_name: stored verbatim or, for NUL, refused.
        try:
            created = await anon.CreateUser(
                user_pb2.CreateUserRequest(
                    email=f"u{i}@example.com", password=PASSWORD + text, display_name=text
                )
            )
        except grpc.aio.AioRpcError as err:
            assert err.code() == INVALID, err.details()
            assert "\x00" in text
            HOSTILE.record(err.code())
        else:
            accepted += 1
            HOSTILE.record(grpc.StatusCode.OK)
            got = await stub.GetUser(user_pb2.GetUserRequest(user_id=created.user_id))
            assert got.display_name == text.strip()
            token = bearer(jwks.mint(created.user_id))
            updated = await anon.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user_id=created.user_id,
                    display_name="x" + text,
                    password=text + PASSWORD,
                    current_password=PASSWORD + text,
                ),
                metadata=token,
            )
            assert updated.user.display_name == ("x" + text).strip()
            ok = await stub.VerifyCredentials(
                user_pb2.VerifyCredentialsRequest(
                    email=f"u{i}@example.com", password=text + PASSWORD
                )
            )
            assert ok.user_id == created.user_id
        # Fields that never hold such text must refuse it cleanly.
        for call in (
            anon.CreateUser(user_pb2.CreateUserRequest(email=text, password=PASSWORD)),
            anon.CreateUser(
                user_pb2.CreateUserRequest(email=f"a{text}b@example.com", password=PASSWORD)
            ),
            stub.GetUser(user_pb2.GetUserRequest(user_id=text)),
            stub.DeleteUser(user_pb2.DeleteUserRequest(user_id=text)),
            stub.ListUsers(user_pb2.ListUsersRequest(page_token=text)),
        ):
            try:
                await call
                # e.g. a' OR '1'='1b@example.com is a legal address: stored as given.
                HOSTILE.record(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as err:
                assert err.code() in (INVALID, grpc.StatusCode.ALREADY_EXISTS), err.details()
                HOSTILE.record(err.code())
        await expect_refused(
            stub.VerifyCredentials(user_pb2.VerifyCredentialsRequest(email=text, password=text)),
            UNAUTH,
            INVALID,
        )
    assert accepted == len([t for t in SQL_METACHARACTERS if "\x00" not in t])
    users = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=100))
    assert len(users.users) >= accepted  # the table is still there


async def test_oversized_message_is_resource_exhausted(anon) -> None:
    big = "x" * (2 * 1024 * 1024)
    await expect_refused(
        anon.CreateUser(user_pb2.CreateUserRequest(email="a@example.com", display_name=big)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    # Below the gRPC limit but above the field bound: the handler's own check answers.
    await expect_refused(
        anon.CreateUser(
            user_pb2.CreateUserRequest(
                email="a@example.com", password=PASSWORD, display_name="x" * 100_000
            )
        ),
        INVALID,
    )


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    return make_certs(d)


async def test_tls_only_server_refuses_plaintext(database_url, jwks, service_keys, certs) -> None:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
    )
    running = await app.start(settings)
    addr = f"127.0.0.1:{running.port}"
    request = user_pb2.CreateUserRequest(email="tls@example.com", password=PASSWORD)
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            await expect_refused(
                user_pb2_grpc.UserServiceStub(ch).CreateUser(request, timeout=3),
                grpc.StatusCode.UNAVAILABLE,
            )
        creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        async with grpc.aio.secure_channel(addr, creds) as ch:
            created = await user_pb2_grpc.UserServiceStub(ch).CreateUser(request, timeout=5)
            assert created.email == "tls@example.com"
    finally:
        await running.stop(0)


async def test_mtls_requires_a_client_certificate(database_url, jwks, service_keys, certs) -> None:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        tls_client_ca_file=str(certs.ca),
    )
    running = await app.start(settings)
    addr = f"127.0.0.1:{running.port}"
    request = user_pb2.CreateUserRequest(email="mtls@example.com", password=PASSWORD)
    try:
        no_cert = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        async with grpc.aio.secure_channel(addr, no_cert) as ch:
            await expect_refused(
                user_pb2_grpc.UserServiceStub(ch).CreateUser(request, timeout=3),
                grpc.StatusCode.UNAVAILABLE,
            )
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=certs.ca.read_bytes(),
            private_key=certs.client_key.read_bytes(),
            certificate_chain=certs.client_cert.read_bytes(),
        )
        async with grpc.aio.secure_channel(addr, with_cert) as ch:
            created = await user_pb2_grpc.UserServiceStub(ch).CreateUser(request, timeout=5)
            assert created.email == "mtls@example.com"
    finally:
        await running.stop(0)
