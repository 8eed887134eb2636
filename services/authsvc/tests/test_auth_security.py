"""Login throttling, the key set (GetJwks, rotation), service tokens to and from usersvc."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.auth.keys import jwk_x, key_from_jwk_x, private_pem, public_pem
from libs.platform.testing.grpc_errors import retry_delay
from libs.platform.testing.net import SourceAddressProxy, ipv6_loopback
from libs.platform.testing.security import HOSTILE, SQL_METACHARACTERS, expect_refused
from services.authsvc import app

from .conftest import make_settings

PASSWORD = "correct horse"
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@contextlib.asynccontextmanager
async def started(database_url, fake_users, service_key_file, **kw):
    """authsvc with these settings, and a stub for it; both closed on the way out."""
    async with started_on_two_addresses(database_url, fake_users, service_key_file, **kw) as (
        running,
        stub,
        _,
    ):
        yield running, stub


@contextlib.asynccontextmanager
async def started_on_two_addresses(database_url, fake_users, service_key_file, **kw):
    """authsvc listening on both loopbacks: a stub from 127.0.0.1 and one from ::1, two
    caller addresses as authsvc sees them (the second is None without IPv6)."""
    dual = ipv6_loopback()
    if dual:
        kw.setdefault("grpc_host", "[::]")
    running = await app.start(
        make_settings(database_url, fake_users[1], service_key_file=service_key_file, **kw)
    )
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")]
    if dual:
        channels.append(grpc.aio.insecure_channel(f"[::1]:{running.port}"))
    try:
        stubs = [auth_pb2_grpc.AuthServiceStub(ch) for ch in channels]
        yield running, stubs[0], (stubs[1] if dual else None)
    finally:
        for ch in channels:
            await ch.close()
        await running.stop(0)


def need_second_address(stub) -> auth_pb2_grpc.AuthServiceAsyncStub:
    if stub is None:
        pytest.skip("needs IPv6 loopback (::1) for a second caller address")
    return stub


WRONG = "guess!!!"


def guess(stub, email: str = "ada@example.com", password: str = WRONG):
    return stub.Login(auth_pb2.LoginRequest(email=email, password=password))


# An account-wide ceiling of 3 failures an hour, far below the per-address one.
ACCOUNT_CEILING = {
    "login_free_failures": 100,
    "login_max_failures_per_account": 3,
    "login_account_window_seconds": 3600,
}


async def reach_account_ceiling(guesser, then) -> None:
    """Guesses from `guesser` fill the victim's account ceiling; `then`, logging in with the
    right password, is refused for the rest of the hour."""
    for _ in range(3):
        await expect_refused(guess(guesser, "victim@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    err = await expect_refused(guess(then, "victim@example.com", PASSWORD), EXHAUSTED)
    assert 3500 <= retry_delay(err) <= 3600


async def rewind(running, seconds: float) -> None:
    """Move every recorded failure `seconds` into the past (instead of sleeping)."""
    await running.pool.execute(
        "UPDATE login_failures SET failed_at = failed_at - make_interval(secs => $1)",
        float(seconds),
    )


async def test_one_address_gets_free_failures_then_doubling_waits(
    database_url, fake_users, service_key_file
) -> None:
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_free_failures=3,
        login_backoff_base_seconds=10,
        login_backoff_max_seconds=40,
    ) as (running, stub):
        for _ in range(3):
            await expect_refused(guess(stub), grpc.StatusCode.UNAUTHENTICATED)
        asked = len(users.authorizations)
        for wait in (10, 20, 40, 40):
            # The right password waits too, whatever the spelling of the address.
            err = await expect_refused(guess(stub, "ADA@Example.com", PASSWORD), EXHAUSTED)
            assert wait - 2 <= retry_delay(err) <= wait
            assert err.details() == f"too many login attempts; retry in {retry_delay(err)} s"
            assert len(users.authorizations) == asked  # usersvc not even asked
            await rewind(running, wait + 1)
            await expect_refused(guess(stub), grpc.StatusCode.UNAUTHENTICATED)
            asked += 1
        await rewind(running, 41)
        ok = await stub.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD))
        assert ok.token
        # The success cleared this address's failures for the account: free ones again.
        for _ in range(3):
            await expect_refused(guess(stub), grpc.StatusCode.UNAUTHENTICATED)
        await expect_refused(guess(stub), EXHAUSTED)


async def test_anonymous_guesses_never_lock_the_owner_out(
    database_url, fake_users, service_key_file
) -> None:
    """Finding 4: 5 wrong guesses used to lock the account for 15 min, right password or
    not. Now they slow down only the address that made them, and only for seconds."""
    fake_users[0].add("victim@example.com", PASSWORD)
    async with started_on_two_addresses(
        database_url, fake_users, service_key_file, login_backoff_base_seconds=5
    ) as (_, attacker, owner):
        owner = need_second_address(owner)
        for _ in range(5):
            await expect_refused(
                guess(attacker, "victim@example.com"), grpc.StatusCode.UNAUTHENTICATED
            )
        err = await expect_refused(guess(attacker, "victim@example.com"), EXHAUSTED)
        assert retry_delay(err) <= 5  # the first backoff step, not a lockout
        for _ in range(3):
            ok = await owner.Login(
                auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD)
            )
            assert ok.token


async def test_account_ceiling_spares_addresses_the_owner_uses(
    database_url, fake_users, service_key_file
) -> None:
    fake_users[0].add("victim@example.com", PASSWORD)
    async with started_on_two_addresses(
        database_url, fake_users, service_key_file, **ACCOUNT_CEILING
    ) as (_, owner, attacker):
        attacker = need_second_address(attacker)
        await owner.Login(auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD))
        # A guesser spread over many addresses: the account-wide ceiling stops them all...
        await reach_account_ceiling(attacker, then=attacker)
        # ...but not the owner, from an address they have logged in from.
        ok = await owner.Login(auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD))
        assert ok.token


async def test_address_ceiling_spares_accounts_known_there(
    database_url, fake_users, service_key_file
) -> None:
    """Finding 4: 50 failures from one address used to lock every account behind it."""
    users = fake_users[0]
    users.add("bob@example.com", PASSWORD)
    users.add("carol@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_max_failures_per_address=5,
        login_throttle_window_seconds=120,
    ) as (running, stub):
        await stub.Login(auth_pb2.LoginRequest(email="bob@example.com", password=PASSWORD))
        for i in range(5):  # credential stuffing from the same NAT: a new account each time
            await expect_refused(guess(stub, f"u{i}@example.com"), grpc.StatusCode.UNAUTHENTICATED)
        err = await expect_refused(guess(stub, "fresh@example.com"), EXHAUSTED)
        assert 110 <= retry_delay(err) <= 120
        # Bob has logged in from here before: the stuffing does not lock him out.
        ok = await stub.Login(auth_pb2.LoginRequest(email="bob@example.com", password=PASSWORD))
        assert ok.token
        # Carol never has: she waits with the stuffer (the documented cost).
        await expect_refused(
            stub.Login(auth_pb2.LoginRequest(email="carol@example.com", password=PASSWORD)),
            EXHAUSTED,
        )
        scopes = {r["scope"] for r in await running.pool.fetch("SELECT scope FROM login_failures")}
        assert "ip:127.0.0.1" in scopes


async def test_a_success_clears_only_the_account_that_logged_in(
    database_url, fake_users, service_key_file
) -> None:
    """Finding 1's reset: logging into your own account must not clear a victim's count."""
    users = fake_users[0]
    users.add("victim@example.com", PASSWORD)
    users.add("eve@example.com", "eve's password")
    async with started(
        database_url, fake_users, service_key_file, login_backoff_base_seconds=60
    ) as (_, stub):
        checked = 0
        for _ in range(4):
            for _ in range(4):
                try:
                    await guess(stub, "victim@example.com")
                except grpc.aio.AioRpcError as err:
                    checked += err.code() == grpc.StatusCode.UNAUTHENTICATED
            await stub.Login(
                auth_pb2.LoginRequest(email="eve@example.com", password="eve's password")
            )
        assert checked == 5  # the free failures, then backoff: eve's logins reset nothing


async def test_concurrent_guesses_are_bounded(database_url, fake_users, service_key_file):
    fake_users[0].add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_free_failures=5,
        login_backoff_base_seconds=60,
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
        # against each other: exactly the free ones get through, however the calls interleave.
        assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == 5
        assert codes.count(EXHAUSTED) == 35
        for code in codes:
            HOSTILE.record(code)


async def test_only_wrong_passwords_count_against_the_limits(
    database_url, fake_users, service_key_file
) -> None:
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_free_failures=3,
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
    assert isinstance(key, Ed25519PrivateKey)
    claims = jwt.decode(
        token, key.public_key(), algorithms=["EdDSA"], audience="usersvc", issuer="service:authsvc"
    )
    assert claims["sub"] == "service:authsvc"


async def test_get_jwks_publishes_signing_and_retired_keys(
    database_url, fake_users, service_key_file, tmp_path
) -> None:
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


# ---------------------------------------------------------------- device tokens


def device_id(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["did"])


async def test_device_token_spares_the_owner_behind_the_guessers_address(
    database_url, fake_users, service_key_file
) -> None:
    """Third round, finding 5: a guesser behind the owner's own address (a NAT) kept the
    owner out with the (account, address) backoff. The owner's device is keyed apart."""
    fake_users[0].add("victim@example.com", PASSWORD)
    async with started(
        database_url,
        fake_users,
        service_key_file,
        login_free_failures=3,
        login_backoff_base_seconds=60,
    ) as (_, stub):
        first = await stub.Login(
            auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD)
        )
        assert first.device_token
        for _ in range(3):
            await expect_refused(guess(stub, "victim@example.com"), grpc.StatusCode.UNAUTHENTICATED)
        # Without the device token the owner shares the guesser's backoff...
        err = await expect_refused(guess(stub, "victim@example.com", PASSWORD), EXHAUSTED)
        assert 50 <= retry_delay(err) <= 60
        # ...with it, the device is the owner's, and its id stays the same.
        again = await stub.Login(
            auth_pb2.LoginRequest(
                email="victim@example.com", password=PASSWORD, device_token=first.device_token
            )
        )
        assert again.token
        assert device_id(again.device_token) == device_id(first.device_token)


async def test_device_token_spares_the_owner_from_the_account_ceiling(
    database_url, fake_users, service_key_file
) -> None:
    """Third round, finding 4: guesses from many addresses reached the account ceiling and
    kept the owner out of every address it had not logged in from, for a day."""
    fake_users[0].add("victim@example.com", PASSWORD)
    async with started_on_two_addresses(
        database_url, fake_users, service_key_file, **ACCOUNT_CEILING
    ) as (running, attacker, owner):
        owner = need_second_address(owner)
        first = await owner.Login(
            auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD)
        )
        # The owner travels: its address is no longer one the account knows.
        await running.pool.execute("DELETE FROM login_known_addresses")
        await reach_account_ceiling(attacker, then=owner)
        ok = await owner.Login(
            auth_pb2.LoginRequest(
                email="victim@example.com", password=PASSWORD, device_token=first.device_token
            )
        )
        assert ok.token


async def test_device_token_of_another_account_is_ignored(stub, users) -> None:
    users.add("ann@example.com", PASSWORD)
    users.add("bob@example.com", PASSWORD)
    anns = await stub.Login(auth_pb2.LoginRequest(email="ann@example.com", password=PASSWORD))
    for token in (anns.device_token, "not a token", anns.device_token[:-4] + "AAAA", "x" * 5000):
        ok = await stub.Login(
            auth_pb2.LoginRequest(email="bob@example.com", password=PASSWORD, device_token=token)
        )
        assert ok.token
        assert users.requests[-1].trusted_device is False
        assert device_id(ok.device_token) != device_id(anns.device_token)
    # An access token is no device token either (its audience differs).
    await stub.Login(
        auth_pb2.LoginRequest(email="ann@example.com", password=PASSWORD, device_token=anns.token)
    )
    assert users.requests[-1].trusted_device is False


async def test_password_check_carries_the_callers_standing(stub, users) -> None:
    """What usersvc orders its login lane by (usersvc's login_rank)."""
    users.add("ann@example.com", PASSWORD)
    for _ in range(2):
        await expect_refused(guess(stub, "nobody@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    seen = users.requests[-1]
    assert (seen.trusted_device, seen.known_address, seen.caller_recent_attempts) == (
        False,
        False,
        1,
    )
    first = await stub.Login(auth_pb2.LoginRequest(email="ann@example.com", password=PASSWORD))
    await stub.Login(auth_pb2.LoginRequest(email="ann@example.com", password=PASSWORD))
    assert users.requests[-1].known_address is True
    await stub.Login(
        auth_pb2.LoginRequest(
            email="ann@example.com", password=PASSWORD, device_token=first.device_token
        )
    )
    assert users.requests[-1].trusted_device is True


async def test_timed_out_password_checks_stay_counted(
    database_url, fake_users, service_key_file
) -> None:
    """Third round, finding 1: attempts that timed out behind a flood were forgiven, so the
    flood never spent its budget. An unreachable usersvc is still forgiven."""
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with started(database_url, fake_users, service_key_file, usersvc_timeout_seconds=0.2) as (
        running,
        stub,
    ):
        users.delay_seconds = 0.5
        for _ in range(2):
            err = await expect_refused(guess(stub), grpc.StatusCode.UNAVAILABLE)
            # Info finding: anonymous callers read no internal service names or codes.
            assert err.details() == "login is temporarily unavailable; retry later"
        # Each attempt counts for its pair, its account and its address.
        assert await running.pool.fetchval("SELECT count(*) FROM login_failures") == 6


# ---------------------------------------------------------------- junk refresh tokens


async def test_junk_token_calls_are_limited_per_address(
    database_url, fake_users, service_key_file
) -> None:
    """Third round, finding 2: 200 concurrent junk RefreshToken calls from one address made
    authsvc shed real users. Now each address gets a bucket, and a token of a shape never
    issued is answered without a database lookup."""
    users = fake_users[0]
    users.add("ada@example.com", PASSWORD)
    async with (
        started(
            database_url,
            fake_users,
            service_key_file,
            token_call_burst=5,
            token_calls_per_second=0.01,
        ) as (running, junk),
        SourceAddressProxy(("127.0.0.1", running.port), "127.0.0.2") as proxy,
        grpc.aio.insecure_channel(proxy.address) as channel,
    ):
        owner = auth_pb2_grpc.AuthServiceStub(channel)
        login = await owner.Login(auth_pb2.LoginRequest(email="ada@example.com", password=PASSWORD))
        for token in ("junk", "x" * 43, "'; DROP TABLE refresh_tokens; --"):
            err = await expect_refused(
                junk.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token)),
                grpc.StatusCode.UNAUTHENTICATED,
            )
            assert err.details() == "refresh token is invalid"
        await junk.Logout(auth_pb2.LogoutRequest(refresh_token="junk"))
        await junk.Logout(auth_pb2.LogoutRequest(refresh_token="y" * 43))
        err = await expect_refused(
            junk.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token="z" * 43)),
            EXHAUSTED,
        )
        assert err.details().startswith("too many token calls from your address; retry in")
        await expect_refused(junk.Logout(auth_pb2.LogoutRequest(refresh_token="j")), EXHAUSTED)
        # Another address is not held by the first one's calls.
        fresh = await owner.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
        assert fresh.token
