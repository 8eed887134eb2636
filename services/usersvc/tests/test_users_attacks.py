"""The second security review's findings against a real usersvc (real PostgreSQL, real gRPC),
written as the attacker would: look-alike and invisible addresses (5), sign-up floods (2),
password changes and deletions that must end sessions (3).

authsvc is the FakeJwksServer, which also records RevokeUserSessions calls; the real
authsvc + usersvc pair is attacked in tests/e2e/test_attacks.py.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import uuid
from pathlib import Path

import asyncpg
import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from libs.platform.migrations import apply_migrations
from libs.platform.testing.grpc_errors import field_violations, retry_delay
from libs.platform.testing.net import SourceAddressProxy
from libs.platform.testing.security import bearer, expect_refused
from services.usersvc import app
from user.v1 import user_pb2, user_pb2_grpc

from .conftest import make_settings

PASSWORD = "correct horse"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXISTS = grpc.StatusCode.ALREADY_EXISTS
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
DENIED = grpc.StatusCode.PERMISSION_DENIED

# (the address an account was made with, spellings that must reach the same account)
LOOKALIKES = [
    ("kim@x.io", ["\u212aim@x.io", "KIM@x.io", "\uff2b\uff29\uff2d@x.io", "kim\uff20x\uff0eio"]),
    ("\u00e4lice@x.io", ["\u00c4LICE@x.io", "a\u0308lice@x.io", "A\u0308LICE@X.IO"]),
    ("a@m\u00fcnchen.de", ["a@xn--mnchen-3ya.de", "A@M\u00dcNCHEN.DE", "a@m\u00fcnchen\u3002de"]),
]

# Characters no one types into an address on purpose: controls, bidi overrides, isolates
# and embeddings, zero-width characters, BOM, soft hyphen, tags, private use, unassigned,
# and default-ignorable marks (combining grapheme joiner, a variation selector, the Hangul
# filler).
INVISIBLE = [
    "\x07",
    "\x1b",
    "\x7f",
    "\u0085",
    "\u202e",
    "\u202a",
    "\u2066",
    "\u200b",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u034f",
    "\ufe0f",
    "\u3164",
    "\U000e0041",
    "\ue000",
    "\U000effff",
]


async def signup(stub, email: str, password: str = PASSWORD) -> str:
    resp = await stub.CreateUser(user_pb2.CreateUserRequest(email=email, password=password))
    return resp.user_id


async def test_lookalike_addresses_are_one_account(stub) -> None:
    for original, spellings in LOOKALIKES:
        uid = await signup(stub, original)
        for spelling in spellings:
            err = await expect_refused(signup(stub, spelling, "attacker password"), EXISTS)
            assert "already exists" in err.details()
            # Login finds the one account, whichever spelling is typed.
            ok = await stub.VerifyCredentials(
                user_pb2.VerifyCredentialsRequest(email=spelling, password=PASSWORD)
            )
            assert (ok.user_id, ok.email) == (uid, original)


async def test_lookalike_cannot_be_taken_by_changing_an_email(stub) -> None:
    await signup(stub, "kim@x.io")
    other = await signup(stub, "eve@x.io")
    await expect_refused(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=other, email="\u212aIM@x.io")), EXISTS
    )


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
async def test_invisible_and_control_characters_are_refused(stub, char) -> None:
    email = f"ad{char}min@x.io"
    err = await expect_refused(signup(stub, email), INVALID)
    violations = field_violations(err)
    assert set(violations) == {"email"}
    assert f"U+{ord(char):04X}" in violations["email"]
    assert err.details().startswith("email: must not contain control")
    err = await expect_refused(
        stub.VerifyCredentials(user_pb2.VerifyCredentialsRequest(email=email, password=PASSWORD)),
        INVALID,
    )
    assert set(field_violations(err)) == {"email"}
    uid = await signup(stub, f"u{ord(char)}@x.io")
    err = await expect_refused(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=uid, email=email)), INVALID
    )
    assert set(field_violations(err)) == {"email"}


async def test_taken_email_is_refused_before_any_hashing(stub, usersvc) -> None:
    await signup(stub, "victim@x.io")
    hashes = 0
    real = usersvc.passwords.hash

    async def counting(password: str) -> str:
        nonlocal hashes
        hashes += 1
        return await real(password)

    usersvc.passwords.hash = counting
    results = await asyncio.gather(
        *(signup(stub, "VICTIM@x.io", f"guess-{i}-password") for i in range(40)),
        return_exceptions=True,
    )
    assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() == EXISTS for r in results)
    assert hashes == 0  # an existing address costs an indexed read, not an argon2 hash


async def test_signups_are_rate_limited_per_address(database_url, jwks, service_keys) -> None:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        signup_burst=3,
        signup_per_minute=6.0,
    )
    running = await app.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            anon = user_pb2_grpc.UserServiceStub(ch)
            for i in range(3):
                await signup(anon, f"flood{i}@x.io")
            # Taken or new, valid or not: every sign-up from the address counts.
            for email in ("flood0@x.io", "fresh@x.io", "not-an-email"):
                err = await expect_refused(signup(anon, email), EXHAUSTED)
                assert 1 <= retry_delay(err) <= 10
                assert err.details().startswith("too many sign-ups from your address; retry in")
    finally:
        await running.stop(0)


class SlowHasher:
    """Stands in for argon2 on the accounts lane: hashing blocks until released."""

    def __init__(self, real) -> None:
        self._real = real
        self.started = threading.Event()
        self.release = threading.Event()

    def hash(self, password: str) -> str:
        self.started.set()
        assert self.release.wait(30)
        return self._real.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        return self._real.verify(hashed, password)


async def test_full_signup_lane_refuses_at_once_and_logins_go_on(
    database_url, jwks, service_keys
) -> None:
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        hash_signup_workers=1,
        hash_signup_queue=1,
    )
    running = await app.start(settings)
    try:
        async with service_keys.channel(running.port, caller="authsvc", audience="usersvc") as ch:
            stub = user_pb2_grpc.UserServiceStub(ch)
            victim = await signup(stub, "victim@x.io")
            slow = SlowHasher(running.passwords._hasher)
            # Duck-typed stand-in for argon2's PasswordHasher: slow on purpose.
            running.passwords._hasher = slow  # type: ignore[assignment]
            first = asyncio.ensure_future(signup(stub, "new0@x.io"))
            assert await asyncio.to_thread(slow.started.wait, 10)
            queued = asyncio.ensure_future(signup(stub, "new1@x.io"))
            await asyncio.sleep(0.1)
            # The lane's thread is busy and its queue is full: refused at once, with a delay.
            err = await expect_refused(signup(stub, "new2@x.io"), EXHAUSTED)
            assert retry_delay(err) >= 1
            assert err.details().startswith("too many sign-ups and password changes at once")
            # Logins have their own lane: they answer while sign-up hashing is stuck.
            for _ in range(3):
                ok = await stub.VerifyCredentials(
                    user_pb2.VerifyCredentialsRequest(email="victim@x.io", password=PASSWORD),
                    timeout=5,
                )
                assert ok.user_id == victim
            assert not first.done()
            slow.release.set()
            assert (await first) and (await queued)
    finally:
        await running.stop(0)


async def test_password_change_needs_the_current_password(anon, jwks) -> None:
    uid = await signup(anon, "ann@x.io")
    as_ann = bearer(jwks.mint(uid))  # a stolen access token, say
    change = user_pb2.UpdateUserRequest(user_id=uid, password="attacker's password")
    err = await expect_refused(anon.UpdateUser(change, metadata=as_ann), INVALID)
    assert "current_password" in field_violations(err)
    change.current_password = "a wrong guess"
    err = await expect_refused(anon.UpdateUser(change, metadata=as_ann), DENIED)
    assert "current_password" in err.details()
    change.current_password = PASSWORD
    await anon.UpdateUser(change, metadata=as_ann)


async def test_services_need_the_current_password_too(stub) -> None:
    uid = await signup(stub, "ann@x.io")
    err = await expect_refused(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=uid, password="new password!")),
        INVALID,
    )
    assert "current_password" in field_violations(err)


async def test_password_guessing_through_update_is_rate_limited(
    database_url, jwks, service_keys
) -> None:
    settings = make_settings(
        database_url, jwks.port, str(service_keys.trusted_dir), password_change_burst=3
    )
    running = await app.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            anon = user_pb2_grpc.UserServiceStub(ch)
            uid = await signup(anon, "ann@x.io")
            as_ann = bearer(jwks.mint(uid))
            for i in range(3):
                await expect_refused(
                    anon.UpdateUser(
                        user_pb2.UpdateUserRequest(
                            user_id=uid, password="new password!", current_password=f"guess{i}"
                        ),
                        metadata=as_ann,
                    ),
                    DENIED,
                )
            err = await expect_refused(
                anon.UpdateUser(
                    user_pb2.UpdateUserRequest(
                        user_id=uid, password="new password!", current_password=PASSWORD
                    ),
                    metadata=as_ann,
                ),
                EXHAUSTED,
            )
            assert retry_delay(err) >= 1
    finally:
        await running.stop(0)


async def test_password_change_and_deletion_end_sessions_in_authsvc(
    anon, stub, jwks, service_keys
) -> None:
    uid = await signup(anon, "ann@x.io")
    creds = await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email="ann@x.io", password=PASSWORD)
    )
    assert creds.credentials_version == 1
    as_ann = bearer(jwks.mint(uid))
    await anon.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=uid, display_name="A"), metadata=as_ann
    )
    assert jwks.revocations == []  # nothing about the password changed
    await anon.UpdateUser(
        user_pb2.UpdateUserRequest(
            user_id=uid, password="new password!", current_password=PASSWORD
        ),
        metadata=as_ann,
    )
    request, authorization = jwks.revocations[-1]
    assert (request.user_id, request.min_credentials_version, request.user_deleted) == (
        uid,
        2,
        False,
    )
    # Sent as the service usersvc, for authsvc.
    claims = jwt.decode(
        authorization.removeprefix("Bearer "),
        service_keys.private["usersvc"].public_key(),
        algorithms=["EdDSA"],
        audience="authsvc",
    )
    assert claims["sub"] == "service:usersvc"
    creds = await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email="ann@x.io", password="new password!")
    )
    assert creds.credentials_version == 2
    await anon.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=uid, current_password="new password!"),
        metadata=as_ann,
    )
    request, _ = jwks.revocations[-1]
    assert (request.user_id, request.min_credentials_version, request.user_deleted) == (
        uid,
        3,
        True,
    )


async def test_session_revocation_outlives_an_authsvc_outage(anon, jwks, usersvc) -> None:
    uid = await signup(anon, "ann@x.io")
    jwks.revoke_fails = grpc.StatusCode.UNAVAILABLE
    # The change itself succeeds: it is committed, and the revocation with it.
    await anon.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=uid, current_password=PASSWORD),
        metadata=bearer(jwks.mint(uid)),
    )
    assert jwks.revocations == []
    pending = await usersvc.pool.fetch("SELECT user_id, user_deleted FROM session_revocations")
    assert [(str(r["user_id"]), r["user_deleted"]) for r in pending] == [(uid, True)]
    jwks.revoke_fails = None
    for _ in range(100):  # the retry task runs every 0.2 s here
        if jwks.revocations:
            break
        await asyncio.sleep(0.1)
    assert [(r.user_id, r.user_deleted) for r, _ in jwks.revocations] == [(uid, True)]
    for _ in range(50):
        if not await usersvc.pool.fetchval("SELECT count(*) FROM session_revocations"):
            break
        await asyncio.sleep(0.1)
    assert await usersvc.pool.fetchval("SELECT count(*) FROM session_revocations") == 0


async def test_migration_gives_existing_rows_one_canonical_form(
    database_url, jwks, service_keys, tmp_path: Path
) -> None:
    """Rows from before the canonical form: look-alike pairs resolve to the oldest account,
    nothing is deleted, and the rest is listed for review."""
    first = tmp_path / "migrations"
    first.mkdir()
    shutil.copy(app.MIGRATIONS / "0001_init.sql", first)
    ids = {name: uuid.uuid4() for name in ("kim", "kelvin", "alice_upper", "alice", "bidi")}
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await apply_migrations(pool, first)
        # The victims registered first; the look-alikes later (created_at order).
        for i, (name, email) in enumerate(
            [
                ("alice_upper", "\u00c4LICE@x.io"),
                ("kim", "Kim@x.io"),
                ("kelvin", "\u212aim@x.io"),
                ("alice", "\u00e4lice@x.io"),
                ("bidi", "evil\u202eoi.x@x.io"),
            ]
        ):
            await pool.execute(
                "INSERT INTO users (id, email, password_hash, created_at) "
                "VALUES ($1, $2, 'hash', now() + make_interval(secs => $3))",
                ids[name],
                email,
                float(i),
            )
    finally:
        await pool.close()
    settings = make_settings(database_url, jwks.port, str(service_keys.trusted_dir))
    running = await app.start(settings)
    try:
        rows = {
            r["id"]: r["email_canonical"]
            for r in await running.pool.fetch("SELECT id, email_canonical FROM users")
        }
        assert len(rows) == 5  # nothing deleted
        assert rows[ids["kim"]] == "kim@x.io"
        assert rows[ids["alice_upper"]] == "\u00e4lice@x.io"
        assert rows[ids["kelvin"]] is None and rows[ids["alice"]] is None
        review = {
            r["user_id"]: (r["reason"], r["kept_by"])
            for r in await running.pool.fetch("SELECT user_id, reason, kept_by FROM email_review")
        }
        assert review == {
            ids["kelvin"]: ("duplicate", ids["kim"]),
            ids["alice"]: ("duplicate", ids["alice_upper"]),
            ids["bidi"]: ("invalid", None),
        }
        # From now on the canonical form is unique.
        with pytest.raises(asyncpg.UniqueViolationError):
            await running.pool.execute(
                "UPDATE users SET email_canonical = 'kim@x.io' WHERE id = $1", ids["alice"]
            )
    finally:
        await running.stop(0)


# ---------------------------------------------------------------- third round, finding 6


async def test_stolen_access_token_cannot_change_the_email_or_delete(anon, jwks) -> None:
    """A stolen access token alone changed the email (locking the owner out while the
    thief's refresh token kept working) and deleted the account. Both now need the
    password, and an email change ends every earlier session like a password change."""
    uid = await signup(anon, "ann@x.io")
    stolen = bearer(jwks.mint(uid))
    for request, call in (
        (user_pb2.UpdateUserRequest(user_id=uid, email="thief@x.io"), anon.UpdateUser),
        (user_pb2.DeleteUserRequest(user_id=uid), anon.DeleteUser),
    ):
        err = await expect_refused(call(request, metadata=stolen), INVALID)
        assert "current_password" in field_violations(err)
        request.current_password = "a guess"
        await expect_refused(call(request, metadata=stolen), DENIED)
    assert jwks.revocations == []
    changed = await anon.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=uid, email="ann@y.io", current_password=PASSWORD),
        metadata=stolen,
    )
    assert changed.user.email == "ann@y.io"
    request, _ = jwks.revocations[-1]
    assert (request.user_id, request.min_credentials_version, request.user_deleted) == (
        uid,
        2,
        False,
    )


async def test_email_changes_are_limited_per_account(database_url, jwks, service_keys) -> None:
    """Each email change may answer ALREADY_EXISTS. Limited per address only, one account
    (with its own password) probed registered addresses from as many addresses as it had."""
    settings = make_settings(
        database_url, jwks.port, str(service_keys.trusted_dir), email_change_burst=2
    )
    running = await app.start(settings)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch,
            SourceAddressProxy(("127.0.0.1", running.port), "127.0.0.2") as proxy,
            grpc.aio.insecure_channel(proxy.address) as elsewhere,
        ):
            here = user_pb2_grpc.UserServiceStub(ch)
            await signup(here, "registered@x.io")
            uid = await signup(here, "prober@x.io")
            token = bearer(jwks.mint(uid))
            probe = user_pb2.UpdateUserRequest(
                user_id=uid, email="registered@x.io", current_password=PASSWORD
            )
            for _ in range(2):
                await expect_refused(here.UpdateUser(probe, metadata=token), EXISTS)
            for stub in (here, user_pb2_grpc.UserServiceStub(elsewhere)):
                err = await expect_refused(stub.UpdateUser(probe, metadata=token), EXHAUSTED)
                assert err.details().startswith("too many email changes for this account")
            # A wrong password spends none of the account's changes, so a thief holding
            # only a token cannot use them up: it is refused as a wrong password.
            probe.current_password = "a guess"
            await expect_refused(
                user_pb2_grpc.UserServiceStub(elsewhere).UpdateUser(probe, metadata=token), DENIED
            )
    finally:
        await running.stop(0)


async def test_another_sessions_wrong_passwords_do_not_block_the_owner(anon, jwks, usersvc) -> None:
    """5 wrong current_password attempts with a stolen token blocked the owner's own
    password change, its only way to end the thief's sessions, for 180 s. The attempts
    now count per (account, caller address)."""
    uid = await signup(anon, "ann@x.io")
    token = bearer(jwks.mint(uid))
    for _ in range(5):
        await expect_refused(
            anon.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user_id=uid, password="thief's pw", current_password="x"
                ),
                metadata=token,
            ),
            DENIED,
        )
    await expect_refused(
        anon.UpdateUser(
            user_pb2.UpdateUserRequest(
                user_id=uid, password="owner's new pw", current_password=PASSWORD
            ),
            metadata=token,
        ),
        EXHAUSTED,
    )
    async with (
        SourceAddressProxy(("127.0.0.1", usersvc.port), "127.0.0.2") as proxy,
        grpc.aio.insecure_channel(proxy.address) as channel,
    ):
        owner = user_pb2_grpc.UserServiceStub(channel)
        changed = await owner.UpdateUser(
            user_pb2.UpdateUserRequest(
                user_id=uid, password="owner's new pw", current_password=PASSWORD
            ),
            metadata=token,
        )
    assert changed.user.user_id == uid


async def test_a_forged_token_flood_is_refused_unchecked_for_its_address_only(
    database_url, jwks, service_keys
) -> None:
    """Third round: forged-token floods cost a full verification each. Past its burst of
    failures an address's new tokens are refused without one; a token this process verified
    before still works from there (users behind the same NAT), and other addresses are
    untouched."""
    settings = make_settings(
        database_url,
        jwks.port,
        str(service_keys.trusted_dir),
        token_failures_burst=5,
        token_failures_per_second=0.2,
    )
    running = await app.start(settings)
    uid = str(uuid.uuid4())  # GetUser answers NOT_FOUND once the token has passed
    forger = Ed25519PrivateKey.generate()
    try:
        async with (
            SourceAddressProxy(("127.0.0.1", running.port), "127.0.0.2") as attacker,
            grpc.aio.insecure_channel(attacker.address) as flood_ch,
            SourceAddressProxy(("127.0.0.1", running.port), "127.0.0.3") as bystander,
            grpc.aio.insecure_channel(bystander.address) as other_ch,
        ):
            flood = user_pb2_grpc.UserServiceStub(flood_ch)
            known = bearer(jwks.mint(uid))
            await expect_refused(
                flood.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=known),
                grpc.StatusCode.NOT_FOUND,
            )
            codes = []
            for _ in range(15):
                try:
                    await flood.GetUser(
                        user_pb2.GetUserRequest(user_id=uid),
                        metadata=bearer(jwks.mint(uid, key=forger)),
                    )
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code())
                    last = err
            assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [EXHAUSTED] * 10
            assert last.details().startswith("too many invalid tokens from this address")
            assert retry_delay(last) > 0
            # Even a valid new token (another exp: equal claims make an equal EdDSA token)
            # waits from there; the one verified before does not.
            await expect_refused(
                flood.GetUser(
                    user_pb2.GetUserRequest(user_id=uid), metadata=bearer(jwks.mint(uid, ttl=600))
                ),
                EXHAUSTED,
            )
            await expect_refused(
                flood.GetUser(user_pb2.GetUserRequest(user_id=uid), metadata=known),
                grpc.StatusCode.NOT_FOUND,
            )
            other = user_pb2_grpc.UserServiceStub(other_ch)
            await expect_refused(
                other.GetUser(
                    user_pb2.GetUserRequest(user_id=uid), metadata=bearer(jwks.mint(uid))
                ),
                grpc.StatusCode.NOT_FOUND,
            )
    finally:
        await running.stop(0)
