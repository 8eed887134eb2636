"""Email identity by the standards (libs/platform/emails.py): every row's canonical form in
the new rules, a look-alike skeleton (services/usersvc/lookalikes.py), and a report of
what the new rules merge. Nothing is deleted.

The canonical form was NFKC_Casefold; it is now PRECIS UsernameCaseMapped for the local
part and the UTS 46 A-label for the domain. Most rows keep theirs (plain ASCII addresses
do); some change (`straße@x.io` was `strasse@x.io`, `a@münchen.de` becomes
`a@xn--mnchen-3ya.de`). For each existing row, oldest first (created_at, then id):

* two rows that the new rules make one address (`a@münchen.de` and `a@xn--mnchen-3ya.de`,
  different strings under NFKC_Casefold) are handled as 0002 handled its collisions: the
  OLDEST keeps the address; the others keep every column but get no canonical form and no
  skeleton (login cannot find them) and are listed in `email_review` as 'duplicate' with
  `kept_by`, for an operator to give them a new address with UpdateUser. The unique index
  leaves no other choice, and it is what 0002's operators already know;
* a row whose address the new rules refuse (`ﬁle@x.io`, `a²@x.io`, invisible marks)
  keeps its NFKC_Casefold form, which emails.canonical() gives for such an address, so its
  owner still logs in with the spelling that reaches it (`file@x.io`); listed as
  'invalid' so that an operator can ask the owner to change it;
* rows that do not collide but whose skeletons are equal (`admin@x.io` and `аdmin@x.io`)
  all keep working: the data cannot tell which one is the victim, and disabling a real
  customer's account is worse than the look-alike that already exists. Skeletons are
  unique from now on (a unique index, so that racing sign-ups cannot both pass); each but
  the oldest of such a group is marked `email_skeleton_shared`, which keeps it outside that
  index while the oldest stays inside and so blocks any new look-alike, and is listed as
  'lookalike' with `kept_by` the oldest. An email change clears the mark. (Should the
  oldest move to another address, the check before each insert still finds the others; only
  the index's guard against two racing look-alikes of them is gone.)
* accounts 0002 left without a canonical form stay so, even where the new rules would no
  longer merge them (`straße@x.io` registered after `strasse@x.io`): an operator may
  already be handling them, and re-enabling a login unasked would surprise more than it
  helps. Their ids are logged so that an operator can give them their own address back
  with UpdateUser, which the new rules now accept.

Stored addresses keep their spelling: width mapping applies to addresses given from now on
(rewriting `kim＠x.io` to `kim@x.io` here could collide in the old `lower(email)` index
with an account 0002 left without a canonical form). Groups are logged by user id, never by
address: `email_review` holds the addresses.

Rolling update: replicas running older code keep inserting rows with a canonical form in
the old rules and no skeleton until they are replaced. `email_skeleton` stays nullable
so those inserts succeed; the unique index on the canonical form keeps them unique in the
old sense; and the new code (services/usersvc/store.py) recomputes the forms of rows with
a canonical form but no skeleton when it checks a new address or looks up a login, finding
them through a partial index that is empty once the rollout is over. One gap remains: an
email change made by an old replica during the rollout keeps the row's previous skeleton
(and an old-style canonical form). A later migration, once no old replica runs, recomputes
every row the way this one does, which closes it, and can make the column NOT NULL.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import asyncpg

from libs.platform import emails
from libs.platform.errors import InvalidArgument
from services.usersvc import lookalikes

log = logging.getLogger(__name__)

SCHEMA = """
ALTER TABLE users
    ADD COLUMN email_skeleton text,
    ADD COLUMN email_skeleton_shared boolean NOT NULL DEFAULT false;

ALTER TABLE email_review DROP CONSTRAINT email_review_reason_check;
ALTER TABLE email_review ADD CONSTRAINT email_review_reason_check
    CHECK (reason IN ('duplicate', 'invalid', 'lookalike'));

-- Rebuilt after the backfill: while canonical forms change row by row, one row's new form
-- can briefly equal another's old one.
DROP INDEX users_email_canonical_key;
"""

INDEXES = """
CREATE UNIQUE INDEX users_email_canonical_key ON users (email_canonical);
-- Existing look-alikes but the oldest of each group stay outside (see above).
CREATE UNIQUE INDEX users_email_skeleton_key ON users (email_skeleton)
    WHERE NOT email_skeleton_shared;
-- email_taken() looks for a skeleton among every row, the look-alikes outside the unique
-- index included.
CREATE INDEX users_email_skeleton_idx ON users (email_skeleton);
-- Rows written by older code during a rolling update.
CREATE INDEX users_email_skeleton_missing_idx ON users (id)
    WHERE email_skeleton IS NULL AND email_canonical IS NOT NULL;
"""

_REVIEW = "INSERT INTO email_review (user_id, email, reason, kept_by) VALUES ($1, $2, $3, $4) "


async def migrate(conn: asyncpg.Connection) -> None:
    await conn.execute(SCHEMA)
    owners: dict[str, object] = {}
    forms: list[tuple[object, str | None, str | None, bool]] = []
    duplicates: list[tuple[object, str, str, object]] = []
    invalid: list[tuple[object, str, str, object]] = []
    by_skeleton: defaultdict[str, list[tuple[object, str]]] = defaultdict(list)
    unlisted: list[tuple[object, str]] = []
    # Runs inside the migration's transaction, under its lock; a cursor keeps memory flat.
    async for row in conn.cursor(
        "SELECT id, email, email_canonical FROM users ORDER BY created_at, id"
    ):
        user_id, email = row["id"], row["email"]
        if row["email_canonical"] is None:
            unlisted.append((user_id, email))  # 0002's duplicates: left as they are
            continue
        try:
            parsed = emails.parse(email)
            key, skeleton = parsed.canonical, lookalikes.of(parsed)
        except InvalidArgument:
            key = emails.canonical(email)
            skeleton = lookalikes.skeleton(key)
            invalid.append((user_id, email, "invalid", None))
        kept_by = owners.setdefault(key, user_id)
        if kept_by != user_id:
            duplicates.append((user_id, email, "duplicate", kept_by))
            forms.append((user_id, None, None, False))
            continue
        forms.append((user_id, key, skeleton, skeleton in by_skeleton))
        by_skeleton[skeleton].append((user_id, email))
    await conn.executemany(
        "UPDATE users SET email_canonical = $2, email_skeleton = $3, "
        "email_skeleton_shared = $4 WHERE id = $1",
        forms,
    )
    # A duplicate now outranks whatever 0002 listed the row for: it is what stops its login.
    await conn.executemany(
        _REVIEW + "ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, "
        "reason = EXCLUDED.reason, kept_by = EXCLUDED.kept_by, found_at = clock_timestamp()",
        duplicates,
    )
    lookalike: list[tuple[object, str, str, object]] = [
        (user_id, email, "lookalike", group[0][0])
        for group in by_skeleton.values()
        for user_id, email in group[1:]
    ]
    await conn.executemany(_REVIEW + "ON CONFLICT (user_id) DO NOTHING", invalid + lookalike)
    await conn.execute(INDEXES)

    for user_id, _, _, kept_by in duplicates:
        log.warning(
            "email identity: account %s has the same address as %s under the new rules; "
            "it keeps its data but cannot log in until it gets another address "
            "(email_review, reason 'duplicate')",
            user_id,
            kept_by,
        )
    for group in by_skeleton.values():
        if len(group) > 1:
            log.warning(
                "email identity: accounts %s have look-alike addresses; all keep working, "
                "new look-alikes are refused (email_review, reason 'lookalike')",
                ", ".join(str(user_id) for user_id, _ in group),
            )
    if invalid:
        log.warning(
            "email identity: %d accounts have addresses the new rules refuse; they keep "
            "their old canonical form (email_review, reason 'invalid')",
            len(invalid),
        )
    for user_id, email in unlisted:
        kept_by = owners.get(emails.canonical(email))
        if kept_by is None:
            log.warning(
                "email identity: account %s lost its canonical form in migration 0002, but "
                "the new rules no longer merge its address with another; UpdateUser can "
                "give it back",
                user_id,
            )
