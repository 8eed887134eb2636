"""One canonical form per email (libs/platform/emails.py), unique, computed for existing rows.

Before this, uniqueness was `lower(email)` under the C locale (A-Z only), so addresses
that differ only in non-ASCII case or by compatibility look-alikes (`ÄLICE@x.io` and
`älice@x.io`, `Kim@x.io` with the Kelvin sign) could belong to two accounts. Such existing
pairs now collide. The migration never fails on them and deletes nothing:

* in each group of rows with the same canonical form, the OLDEST account (created_at, then
  id) keeps the address: it was there first, and a look-alike registered later is the one
  an attacker would have made;
* the others keep every column as it was, but get no canonical form (NULL, outside the
  unique index): login cannot find them, since login looks addresses up by canonical form.
  Each is listed in `email_review` (reason 'duplicate', with the id of the account that
  kept the address) for an operator to resolve, for example by giving the account a new
  address with UpdateUser, which sets its canonical form again;
* rows whose address the new policy refuses (control or invisible characters) keep their
  canonical form, so they still log in if their owner can type it; they are listed with
  reason 'invalid' so that an operator can ask the owner to change it.

`lower(email)`'s index stays until no replica runs code from before this migration: during
a rolling update the old code still inserts rows without a canonical form, and that index
keeps them unique in the old sense. A later migration drops it.
"""

from __future__ import annotations

import asyncpg

from libs.platform import emails

SCHEMA = """
ALTER TABLE users ADD COLUMN email_canonical text;

CREATE TABLE email_review (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('duplicate', 'invalid')),
    -- For 'duplicate': the account that kept the address.
    kept_by uuid,
    found_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""


async def migrate(conn: asyncpg.Connection) -> None:
    await conn.execute(SCHEMA)
    owners: dict[str, object] = {}
    canonical_of: list[tuple[object, str]] = []
    review: list[tuple[object, str, str, object]] = []
    # Runs inside the migration's transaction, under its lock; a cursor keeps memory flat on
    # a large table.
    async for row in conn.cursor("SELECT id, email FROM users ORDER BY created_at, id"):
        user_id, email = row["id"], row["email"]
        folded = emails.canonical(email)
        kept_by = owners.setdefault(folded, user_id)
        if kept_by != user_id:
            review.append((user_id, email, "duplicate", kept_by))
            continue
        canonical_of.append((user_id, folded))
        if emails.problem(email.strip()) is not None:
            review.append((user_id, email, "invalid", None))
    await conn.executemany("UPDATE users SET email_canonical = $2 WHERE id = $1", canonical_of)
    await conn.executemany(
        "INSERT INTO email_review (user_id, email, reason, kept_by) VALUES ($1, $2, $3, $4)",
        review,
    )
    # After the backfill: building the index once is cheaper than maintaining it per row.
    await conn.execute("CREATE UNIQUE INDEX users_email_canonical_key ON users (email_canonical)")
