"""Login throttling, the key set (GetJwks, rotation) and the service token to usersvc."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import jwt
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.auth import jwk_x, key_from_jwk_x, private_pem, public_pem
from libs.platform.testing.security import HOSTILE, SQL_METACHARACTERS, expect_refused
from services.authsvc import app
from services.authsvc.throttle import peer_scope

from .conftest import make_settings

PASSWORD = "correct horse"
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def retry_delay(err: grpc.aio.AioRpcError) -> int:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.seconds
    raise AssertionError("no RetryInfo detail")


@contextlib.asynccontextmanager
async def started(database_url, fake_users, service_key_file, **kw):
    """authsvc with these settings, and a stub for it; both closed on the way out."""
    running = await app.start(
        make_settings(database_url, fake_users[1], service_key_file=service_key_file, **kw)
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running, auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        await channel.close()
        await running.stop(0)


async def test_brute_force_on_one_account_is_throttled(
    database_url, fake_users, service_key_file
) -> None:
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_max_failures_per_account=3,
        login_throttle_window_seconds=60,
    ) as (running, stub):
        for _ in range(3):
            await expect_refused(
                stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password="guess!!")),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        # The right password is refused too while the account is throttled (case-insensitive).
        err = await expect_refused(
            stub.Login(auth_pb2.LoginRequest(email="ADA@example.com", password=PASSWORD)),
            EXHAUSTED,
        )
        delay = retry_delay(err)
        assert 55 <= delay <= 60
        assert err.details() == f"too many login attempts; retry in {delay} s"
        verify_calls = len(users.authorizations)
        await expect_refused(
            stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password="guess!!")),
            EXHAUSTED,
        )
        assert len(users.authorizations) == verify_calls  # usersvc not even asked
        # Other accounts are unaffected.
        users.add("bob@example.com", PASSWORD)
        await stub.Login(auth_pb2.LoginRequest(email="bob@example.com", password=PASSWORD))
        # Once the window has passed, the account is open again.
        await running.pool.execute(
            "UPDATE login_failures SET failed_at = failed_at - interval '61 seconds'"
        )
        ok = await stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD))
        assert ok.token


async def test_many_accounts_from_one_address_are_throttled(
    database_url, fake_users, service_key_file
) -> None:
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_max_failures_per_account=100,
        login_max_failures_per_address=5,
        login_throttle_window_seconds=120,
    ) as (running, stub):
        for i in range(5):  # credential stuffing: a new account each time
            await expect_refused(
                stub.Login(auth_pb2.LoginRequest(email=f"u{i}@example.com", password="x")),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        err = await expect_refused(
            stub.Login(auth_pb2.LoginRequest(email="fresh@example.com", password="x")), EXHAUSTED
        )
        assert 110 <= retry_delay(err) <= 120
        scopes = await running.pool.fetch("SELECT DISTINCT scope FROM login_failures")
        assert {"ip:127.0.0.1"} <= {r["scope"] for r in scopes}


async def test_concurrent_guesses_are_bounded(database_url, fake_users, service_key_file):
    fake_users[0].add("ada@example.com", PASSWORD)
    async with started(
        database_url, fake_users, service_key_file, login_max_failures_per_account=5
    ) as (_, stub):
        results = await asyncio.gather(
            *(
                stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=f"g{i}"))
                for i in range(40)
            ),
            return_exceptions=True,
        )
        codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(codes) == 40
        # Each attempt is counted before its password is checked, so racing guesses count
        # against each other: exactly the limit get through, however the calls interleave.
        assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == 5
        assert codes.count(EXHAUSTED) == 35
        for code in codes:
            HOSTILE.record(code)


def test_peer_scope() -> None:
    assert peer_scope("ipv4:10.1.2.3:5555") == "ip:10.1.2.3"
    assert peer_scope("ipv6:[::1]:5555") == "ip:::1"
    assert peer_scope("ipv6:[2001:db8::1]:443") == "ip:2001:db8::1"
    assert peer_scope("unix:/tmp/sock") == "ip:unix:/tmp/sock"
    assert peer_scope(None) == "ip:unknown"


async def test_only_wrong_passwords_count_against_the_limits(
    database_url, fake_users, service_key_file
) -> None:
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_max_failures_per_account=3,
        login_max_failures_per_address=3,
    ) as (running, stub):
        users.outage = True
        for _ in range(5):
            await expect_refused(
                stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD)),
                grpc.StatusCode.UNAVAILABLE,
            )
        users.outage = False
        # Successful logins from one address, to several accounts, are not failures either.
        for name in ("ada", "bob", "cy", "dee", "eve"):
            if name != "ada":
                users.add(f"{name}@example.com", PASSWORD)
            ok = await stub.Login(
                auth_pb2.LoginRequest(email=f"{name}@example.com", password=PASSWORD)
            )
            assert ok.token
        assert await running.pool.fetchval("SELECT count(*) FROM login_failures") == 0


async def test_login_hostile_strings_never_internal(stub, users) -> None:
    users.add("ada@example.com", PASSWORD)
    for text in SQL_METACHARACTERS:
        for request in (
            auth_pb2.LoginRequest(email=text, password=text),
            auth_pb2.LoginRequest(email=f"{text}@example.com", password=PASSWORD),
            auth_pb2.LoginRequest(email="ada@example.com", password=text),
        ):
            await expect_refused(
                stub.Login(request),
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.INVALID_ARGUMENT,
                EXHAUSTED,
            )
        for call in (
            stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=text)),
            stub.Logout(auth_pb2.LogoutRequest(refresh_token=text)),
        ):
            try:
                await call
                # Logout of an unknown token succeeds and changes nothing.
                HOSTILE.record(grpc.StatusCode.OK, "OK_NO_EFFECT")
            except grpc.aio.AioRpcError as err:
                assert err.code() in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ), err.details()
                HOSTILE.record(err.code())
    await expect_refused(
        stub.Login(auth_pb2.LoginRequest(email="a@example.com", password="x" * 2_000_000)),
        EXHAUSTED,
    )


async def test_login_calls_usersvc_as_the_authsvc_service(stub, users, service_key_file):
    from cryptography.hazmat.primitives import serialization

    users.add("ada@example.com", PASSWORD)
    await stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD))
    scheme, _, token = users.authorizations[-1].partition(" ")
    assert scheme == "Bearer"
    pem = Path(service_key_file).read_bytes()  # noqa: ASYNC240 - a tiny local file in a test
    key = serialization.load_pem_private_key(pem, password=None)
    claims = jwt.decode(
        token, key.public_key(), algorithms=["EdDSA"], audience="usersvc", issuer="service:authsvc"
    )
    assert claims["sub"] == "service:authsvc"


async def test_get_jwks_publishes_signing_and_retired_keys(
    database_url, fake_users, service_key_file, tmp_path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "new.pem").write_bytes(private_pem(new))
    retired = tmp_path / "retired"
    retired.mkdir()
    (retired / "old.pem").write_bytes(public_pem(old.public_key()))
    users = fake_users[0]
    uid = users.add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        auth_signing_key_file=str(tmp_path / "new.pem"),
        auth_verification_key_files=str(retired),
    ) as (running, stub):
        jwks = await stub.GetJwks(auth_pb2.GetJwksRequest())
        by_x = {k.x: k for k in jwks.keys}
        assert set(by_x) == {jwk_x(old.public_key()), jwk_x(new.public_key())}
        for k in jwks.keys:
            assert (k.kty, k.crv, k.alg, k.use) == ("OKP", "Ed25519", "EdDSA", "sig")
        login = await stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD))
        kid = jwt.get_unverified_header(login.token)["kid"]
        signing = by_x[jwk_x(new.public_key())]
        assert kid == signing.kid == running.signing_key.kid
        claims = jwt.decode(
            login.token,
            key_from_jwk_x(signing.x),
            algorithms=["EdDSA"],
            audience="micro",
            issuer="authsvc",
        )
        assert claims["sub"] == uid
        assert claims["exp"] - claims["iat"] == 15 * 60
