"""The email identity issue's findings against a real usersvc (real PostgreSQL, real gRPC):
different mailboxes merged by NFKC + case folding; an internationalized domain and its
Punycode as two accounts; look-alikes across scripts; invisible marks; a full-width `＠`
stored as typed; and the migration that moves existing rows to the new rules.

Each test fails on the code before the change (NFKC_Casefold canonical forms, no skeletons).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest
from argon2 import PasswordHasher

from libs.platform import emails
from libs.platform.errors import AlreadyExists
from libs.platform.migrations import apply_migrations
from libs.platform.testing.grpc_errors import field_violations
from libs.platform.testing.security import bearer, expect_refused
from services.usersvc import app
from services.usersvc.store import UserStore
from user.v1 import user_pb2, user_pb2_grpc

from .conftest import make_settings

PASSWORD = "correct horse"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXISTS = grpc.StatusCode.ALREADY_EXISTS
UNAUTH = grpc.StatusCode.UNAUTHENTICATED

CYRILLIC_A = "\u0430"
CYRILLIC_O = "\u043e"


async def signup(stub, email: str, password: str = PASSWORD) -> user_pb2.CreateUserResponse:
    return await stub.CreateUser(user_pb2.CreateUserRequest(email=email, password=password))


async def login(stub, email: str, password: str = PASSWORD) -> user_pb2.VerifyCredentialsResponse:
    return await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email=email, password=password)
    )


def template(err: grpc.aio.AioRpcError, email: str) -> str:
    """The refusal's message with the address taken out: what the caller learns."""
    return err.details().replace(repr(email), "<email>")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("stra\u00dfe@x.io", "strasse@x.io"),
        ("strasse@x.io", "STRA\u00dfE@x.io"),
        ("a@stra\u00dfe.de", "a@strasse.de"),
        ("\u03c2@x.io", "\u03c3@x.io"),  # final and medial sigma
    ],
)
async def test_different_mailboxes_are_different_accounts(stub, first: str, second: str) -> None:
    """Case folding made `straße` and `strasse` one account: the second owner could not
    sign up, and logging in as either reached the first."""
    one = await signup(stub, first, "first's password")
    two = await signup(stub, second, "second's password")
    assert one.user_id != two.user_id
    assert (await login(stub, first, "first's password")).user_id == one.user_id
    assert (await login(stub, second, "second's password")).user_id == two.user_id


@pytest.mark.parametrize(
    ("plain", "compatibility", "code_point"),
    [
        ("a2@x.io", "a\u00b2@x.io", "U+00B2"),
        ("file@x.io", "\ufb01le@x.io", "U+FB01"),
        ("tm@x.io", "\u2122@x.io", "U+2122"),
    ],
)
async def test_compatibility_characters_are_refused_not_merged(
    stub, plain: str, compatibility: str, code_point: str
) -> None:
    """NFKC made `a²@x.io` the account `a2@x.io`: sign-up answered ALREADY_EXISTS and a
    login with `a²` reached `a2`'s account. Now such an address is refused as it is."""
    uid = (await signup(stub, plain)).user_id
    err = await expect_refused(signup(stub, compatibility, "attacker password"), INVALID)
    assert field_violations(err)["email"].startswith(f"must not contain {code_point}")
    await expect_refused(login(stub, compatibility), INVALID)
    err = await expect_refused(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=uid, email=compatibility)), INVALID
    )
    assert set(field_violations(err)) == {"email"}


async def test_internationalized_domain_and_its_punycode_are_one_account(stub) -> None:
    """`a@münchen.de` and `a@xn--mnchen-3ya.de` are one mailbox; they were two accounts."""
    created = await signup(stub, "a@m\u00fcnchen.de")
    for spelling in ("a@xn--mnchen-3ya.de", "A@XN--MNCHEN-3YA.DE", "a@M\u00dcNCHEN.de"):
        err = await expect_refused(signup(stub, spelling, "attacker password"), EXISTS)
        assert "already exists" in err.details()
        ok = await login(stub, spelling)
        assert (ok.user_id, ok.email) == (created.user_id, "a@m\u00fcnchen.de")


@pytest.mark.parametrize(
    ("victim", "lookalike"),
    [
        ("admin@x.io", f"{CYRILLIC_A}dmin@x.io"),
        ("admin@x.io", f"{CYRILLIC_A}DMIN@x.io"),  # upper case of the look-alike too
        ("ann@paypal.com", f"ann@p{CYRILLIC_A}yp{CYRILLIC_A}l.com"),  # in the domain
        ("bob@x.io", "b\u03c3b@x.io"),  # Greek sigma
        ("root@x.io", f"r{CYRILLIC_O}{CYRILLIC_O}t@x.io"),
    ],
)
async def test_lookalike_of_an_existing_account_is_refused(
    stub, victim: str, lookalike: str
) -> None:
    """Cyrillic `аdmin@x.io` was a second account that looks exactly like `admin@x.io`."""
    uid = (await signup(stub, victim)).user_id
    err = await expect_refused(signup(stub, lookalike, "attacker password"), EXISTS)
    # The same answer as for the address itself: nothing tells a look-alike apart.
    same = await expect_refused(signup(stub, victim.upper(), "attacker password"), EXISTS)
    assert template(err, lookalike) == template(same, victim.upper())
    assert "looks the same" in err.details()
    # The look-alike is not the victim's account: its login is just unknown.
    await expect_refused(login(stub, lookalike), UNAUTH)
    assert (await login(stub, victim)).user_id == uid


@pytest.mark.parametrize("char", ["\u034f", "\ufe0f", "\u3164", "\u2800"])
@pytest.mark.parametrize("where", ["ad{}min@x.io", "admin@pay{}pal.com"])
async def test_invisible_marks_cannot_make_a_lookalike(stub, char: str, where: str) -> None:
    """U+034F (combining grapheme joiner), U+FE0F (variation selector), U+3164 (Hangul
    filler) and U+2800 (blank braille pattern) show nothing: each made a second account
    that looks exactly like the first."""
    original = where.format("")
    email = where.format(char)
    uid = (await signup(stub, original)).user_id
    err = await expect_refused(signup(stub, email, "attacker password"), INVALID)
    violation = field_violations(err)["email"]
    assert violation.startswith("must not contain")
    assert f"U+{ord(char):04X}" in violation
    await expect_refused(login(stub, email), INVALID)
    other = (await signup(stub, "eve@x.io")).user_id
    await expect_refused(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=other, email=email)), INVALID
    )
    assert (await login(stub, original)).user_id == uid


async def test_full_width_at_is_stored_width_mapped(stub) -> None:
    """`kim＠x.io` was stored and shown with its full-width `＠`."""
    created = await signup(stub, "Kim\uff20x\uff0eio")
    assert created.email == "Kim@x.io"
    got = await stub.GetUser(user_pb2.GetUserRequest(user_id=created.user_id))
    assert got.email == "Kim@x.io"
    # Every spelling that maps to the same canonical form logs in.
    for spelling in ("kim@x.io", "\u212aIM@X.IO", "\uff4b\uff49\uff4d\uff20\uff58.io"):
        assert (await login(stub, spelling)).user_id == created.user_id
    changed = await stub.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=created.user_id, email="kim2\uff20x.io")
    )
    assert changed.user.email == "kim2@x.io"


async def test_email_change_obeys_the_same_rules(anon, jwks) -> None:
    admin = (await signup(anon, "admin@x.io")).user_id
    await signup(anon, "a@m\u00fcnchen.de")
    await signup(anon, "stra\u00dfe@x.io")
    eve = (await signup(anon, "eve@x.io")).user_id
    as_eve = bearer(jwks.mint(eve))

    def change(user_id: str, email: str):
        return anon.UpdateUser(
            user_pb2.UpdateUserRequest(user_id=user_id, email=email, current_password=PASSWORD),
            metadata=bearer(jwks.mint(user_id)),
        )

    for taken in (f"{CYRILLIC_A}dmin@x.io", "a@xn--mnchen-3ya.de"):
        err = await expect_refused(change(eve, taken), EXISTS)
        assert "looks the same" in err.details()
    changed = await anon.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=eve, email="strasse@x.io", current_password=PASSWORD),
        metadata=as_eve,
    )
    assert changed.user.email == "strasse@x.io"
    # An account's own address in another spelling, or a look-alike of it, is no conflict.
    for own in ("ADMIN@x.io", f"{CYRILLIC_A}dmin@x.io"):
        assert (await change(admin, own)).user.email == own


async def test_concurrent_lookalike_signups_make_one_account(usersvc) -> None:
    """Skeletons are unique in the database, not only checked before the insert: racing
    look-alikes cannot all be made. Raced at the store, past the service's early check and
    the hashing lanes, which would otherwise space the inserts out."""
    store = UserStore(usersvc.pool)
    spellings = [
        "admin@x.io",
        f"{CYRILLIC_A}dmin@x.io",
        "adrnin@x.io",
        f"{CYRILLIC_A}drnin@x.io",
        "ADMIN@x.io",
        "\uff41dmin@x.io",
    ] * 3
    results = await asyncio.gather(
        *(store.create(emails.parse(s), "", "hash") for s in spellings),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(r, AlreadyExists) for r in results if r not in made), results


# ---------------------------------------------------------------- existing rows


HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def _rows_before_0004(database_url: str, tmp_path: Path, rows: list[tuple[str, str]]):
    """Applies 0001-0003 and inserts `rows` (name, email) as code before 0004 did: the
    canonical form in the old rules, oldest first. Returns their ids by name."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(app.MIGRATIONS.iterdir()):
        if path.name[:4] in ("0001", "0002", "0003"):
            shutil.copy(path, before)
    ids = {name: uuid.uuid4() for name, _ in rows}
    hashed = HASHER.hash(PASSWORD)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await apply_migrations(pool, before)
        for i, (name, email) in enumerate(rows):
            await pool.execute(
                "INSERT INTO users (id, email, email_canonical, password_hash, created_at) "
                "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
                ids[name],
                email,
                emails.legacy_canonical(email),
                hashed,
                float(i),
            )
    finally:
        await pool.close()
    return ids


async def test_migration_reports_what_the_new_rules_merge_and_deletes_nothing(
    database_url, jwks, service_keys, tmp_path: Path, caplog
) -> None:
    ids = await _rows_before_0004(
        database_url,
        tmp_path,
        [
            ("munich", "a@m\u00fcnchen.de"),
            ("punycode", "a@xn--mnchen-3ya.de"),  # the same mailbox, registered later
            ("admin", "admin@x.io"),
            ("cyrillic", f"{CYRILLIC_A}dmin@x.io"),  # a look-alike, registered later
            ("ligature", "\ufb01le@x.io"),  # refused by the new rules
            ("sharp_s", "Stra\u00dfe@x.io"),  # was `strasse@x.io`
        ],
    )
    settings = make_settings(database_url, jwks.port, str(service_keys.trusted_dir))
    with caplog.at_level(logging.WARNING):
        running = await app.start(settings)
    try:
        rows = {
            r["id"]: (r["email"], r["email_canonical"], r["email_skeleton"])
            for r in await running.pool.fetch(
                "SELECT id, email, email_canonical, email_skeleton FROM users"
            )
        }
        assert len(rows) == 6  # nothing deleted
        assert rows[ids["punycode"]] == ("a@xn--mnchen-3ya.de", None, None)
        assert rows[ids["munich"]][1] == "a@xn--mnchen-3ya.de"
        assert rows[ids["sharp_s"]][1] == "stra\u00dfe@x.io"
        assert rows[ids["ligature"]][1] == "file@x.io"  # its old form: it still logs in
        assert rows[ids["admin"]][2] == rows[ids["cyrillic"]][2]  # one skeleton, two accounts
        shared = {
            r["id"]
            for r in await running.pool.fetch("SELECT id FROM users WHERE email_skeleton_shared")
        }
        assert shared == {ids["cyrillic"]}  # the oldest holds the skeleton's unique entry
        review = {
            r["user_id"]: (r["reason"], r["kept_by"])
            for r in await running.pool.fetch("SELECT user_id, reason, kept_by FROM email_review")
        }
        assert review == {
            ids["punycode"]: ("duplicate", ids["munich"]),
            ids["cyrillic"]: ("lookalike", ids["admin"]),
            ids["ligature"]: ("invalid", None),
        }
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert str(ids["punycode"]) in logged
        assert f"{ids['admin']}, {ids['cyrillic']}" in logged
        assert "a@m\u00fcnchen.de" not in logged  # user ids, not addresses

        async with service_keys.channel(
            running.port, caller="authsvc", audience="usersvc"
        ) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            # The look-alike pair both keep working; the oldest keeps the shared mailbox.
            for name, spelling in [
                ("admin", "admin@x.io"),
                ("cyrillic", f"{CYRILLIC_A}dmin@x.io"),
                ("munich", "a@xn--mnchen-3ya.de"),
                ("ligature", "file@x.io"),
                ("sharp_s", "STRA\u00dfE@x.io"),
            ]:
                assert (await login(users, spelling)).user_id == str(ids[name])
            # No new look-alike of them from now on.
            for spelling in ("adrnin@x.io", f"{CYRILLIC_A}drnin@x.io", "\ufb01le@x.io"):
                await expect_refused(signup(users, spelling), EXISTS, INVALID)
            # `strasse@x.io` is now a mailbox of its own.
            await signup(users, "strasse@x.io")
    finally:
        await running.stop(0)


async def test_rows_written_by_older_code_during_a_rollout_are_checked(stub, usersvc) -> None:
    """A replica still on the old code inserts rows with an old-style canonical form and no
    skeleton until it is replaced; the new code must neither miss them nor lock them out."""
    old_rows = {"b@m\u00fcnchen.de": uuid.uuid4(), "root@x.io": uuid.uuid4()}
    for email, user_id in old_rows.items():
        await usersvc.pool.execute(
            "INSERT INTO users (id, email, email_canonical, password_hash) VALUES ($1, $2, $3, $4)",
            user_id,
            email,
            emails.legacy_canonical(email),
            HASHER.hash(PASSWORD),
        )
    await expect_refused(signup(stub, "b@xn--mnchen-3ya.de"), EXISTS)
    await expect_refused(signup(stub, f"r{CYRILLIC_O}{CYRILLIC_O}t@x.io"), EXISTS)
    for spelling, email in (
        ("B@XN--MNCHEN-3YA.DE", "b@m\u00fcnchen.de"),
        ("ROOT@x.io", "root@x.io"),
    ):
        assert (await login(stub, spelling)).user_id == str(old_rows[email])
