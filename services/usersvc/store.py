"""users_db access. All SQL for usersvc lives here (and in migrations/)."""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from libs.platform import db, emails
from libs.platform.emails import Email
from libs.platform.errors import AlreadyExists
from services.usersvc import lookalikes


@dataclass(frozen=True)
class UserRow:
    id: str
    email: str
    display_name: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class Credentials:
    id: str
    email: str
    password_hash: str
    credentials_version: int


@dataclass(frozen=True)
class Revocation:
    """A pending request to authsvc to end a user's sessions (table session_revocations)."""

    user_id: str
    min_credentials_version: int
    user_deleted: bool


# Keeps the strongest pending request per user: the highest version, and deletion once seen.
_REQUEST_REVOCATION = """
INSERT INTO session_revocations (user_id, min_credentials_version, user_deleted)
VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE SET
    min_credentials_version = greatest(
        session_revocations.min_credentials_version, EXCLUDED.min_credentials_version),
    user_deleted = session_revocations.user_deleted OR EXCLUDED.user_deleted,
    requested_at = clock_timestamp()
"""


_COLUMNS = "id, email, display_name, created_at, updated_at"


def _row(r: asyncpg.Record) -> UserRow:
    return UserRow(str(r["id"]), r["email"], r["display_name"], r["created_at"], r["updated_at"])


def duplicate_email(email: str) -> AlreadyExists:
    # One answer for the same address and for a look-alike, so it tells no more than
    # ALREADY_EXISTS always told: that this address is not available.
    return AlreadyExists(f"a user with email {email!r} or one that looks the same already exists")


# Rows written by a replica older than migration 0004 during a rolling update: a canonical
# form in the old rules and no skeleton (a partial index finds them; normally there are
# none). Checks recompute their forms rather than miss them; bounded, since a rollout
# lasts minutes.
_STRAGGLER = "email_skeleton IS NULL AND email_canonical IS NOT NULL"
# One round trip, as the check before it was: sign-ups run it before hashing.
_TAKEN = (
    "SELECT EXISTS (SELECT 1 FROM users WHERE (email_canonical = $1 OR email_skeleton = $2) "
    "AND id IS DISTINCT FROM $3) AS taken, "
    f"ARRAY(SELECT email FROM users WHERE {_STRAGGLER} AND id IS DISTINCT FROM $3 "
    "LIMIT 1000) AS stragglers"
)


class UserStore:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = acquire_timeout

    def _conn(self) -> db.Acquire:
        return db.acquire(self._pool, self._timeout)

    async def create(self, email: Email, display_name: str, password_hash: str) -> UserRow:
        # The unique indexes on the canonical form and on the skeleton decide a race between
        # two sign-ups; the caller's email_taken() has also looked at rows of older code.
        async with self._conn() as conn:
            try:
                r = await conn.fetchrow(
                    f"INSERT INTO users "
                    f"(id, email, email_canonical, email_skeleton, display_name, password_hash) "
                    f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
                    uuid.uuid4(),
                    email.address,
                    email.canonical,
                    lookalikes.of(email),
                    display_name,
                    password_hash,
                    timeout=db.query_timeout(),
                )
            except asyncpg.UniqueViolationError:
                raise duplicate_email(email.address) from None
        return _row(r)

    async def email_taken(self, email: Email, user_id: str | None = None) -> bool:
        """Whether an account other than `user_id` has this address or a look-alike."""
        skeleton = lookalikes.of(email)
        async with self._conn() as conn:
            r = await conn.fetchrow(
                _TAKEN,
                email.canonical,
                skeleton,
                uuid.UUID(user_id) if user_id else None,
                timeout=db.query_timeout(),
            )
        return bool(r["taken"]) or any(
            lookalikes.of_stored(address) == skeleton for address in r["stragglers"]
        )

    async def get(self, user_id: str) -> UserRow | None:
        async with self._conn() as conn:
            r = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM users WHERE id = $1",
                uuid.UUID(user_id),
                timeout=db.query_timeout(),
            )
        return _row(r) if r else None

    async def get_many(self, user_ids: list[str], time_limit: float) -> list[UserRow]:
        """The users among user_ids that exist, in no particular order.

        time_limit bounds the statement: it may serve a batch of requests, so no one
        request's deadline applies.
        """
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::uuid[])",
                [uuid.UUID(u) for u in user_ids],
                timeout=time_limit,
            )
        return [_row(r) for r in rows]

    async def update(
        self,
        user_id: str,
        *,
        email: Email | None,
        display_name: str | None,
        password_hash: str | None,
    ) -> UserRow | None:
        """Change the given fields. A new password or email also bumps credentials_version
        and, in the same transaction, asks for the user's older sessions to end
        (session_revocations)."""
        new_credentials = password_hash is not None or email is not None
        sets: list[str] = []
        args: list[object] = [uuid.UUID(user_id)]
        for column, value in (
            ("email", email.address if email else None),
            ("email_canonical", email.canonical if email else None),
            ("email_skeleton", lookalikes.of(email) if email else None),
            # Out of the unique index no more: 0004 left existing look-alikes there.
            ("email_skeleton_shared", False if email else None),
            ("display_name", display_name),
            ("password_hash", password_hash),
        ):
            if value is not None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")
        if not sets:
            return await self.get(user_id)
        if new_credentials:
            sets.append("credentials_version = credentials_version + 1")
        sets.append("updated_at = clock_timestamp()")
        if email is not None and await self.email_taken(email, user_id):
            raise duplicate_email(email.address)
        async with self._conn() as conn, conn.transaction():
            try:
                r = await conn.fetchrow(
                    f"UPDATE users SET {', '.join(sets)} WHERE id = $1 "
                    f"RETURNING {_COLUMNS}, credentials_version",
                    *args,
                    timeout=db.query_timeout(),
                )
            except asyncpg.UniqueViolationError:
                raise duplicate_email(email.address if email else "") from None
            if r is not None and new_credentials:
                await conn.execute(
                    _REQUEST_REVOCATION,
                    r["id"],
                    r["credentials_version"],
                    False,
                    timeout=db.query_timeout(),
                )
        return _row(r) if r else None

    async def delete(self, user_id: str) -> bool:
        """Delete the user and, in the same transaction, ask for all its sessions to end."""
        async with self._conn() as conn, conn.transaction():
            version = await conn.fetchval(
                "DELETE FROM users WHERE id = $1 RETURNING credentials_version",
                uuid.UUID(user_id),
                timeout=db.query_timeout(),
            )
            if version is None:
                return False
            await conn.execute(
                _REQUEST_REVOCATION,
                uuid.UUID(user_id),
                version + 1,
                True,
                timeout=db.query_timeout(),
            )
        return True

    async def list(self, limit: int, after: tuple[dt.datetime, str] | None) -> list[UserRow]:
        async with self._conn() as conn:
            if after is None:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1",
                    limit,
                    timeout=db.query_timeout(),
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM users WHERE (created_at, id) > ($1, $2) "
                    "ORDER BY created_at, id LIMIT $3",
                    after[0],
                    uuid.UUID(after[1]),
                    limit,
                    timeout=db.query_timeout(),
                )
        return [_row(r) for r in rows]

    async def credentials(self, email: Email) -> Credentials | None:
        # One round trip, as before: logins for unknown addresses are what a flood sends.
        # The second condition adds the rows an older replica wrote during a rolling update
        # (their canonical form is in the old rules; normally there are none), matched by
        # their form in the current rules.
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, email, password_hash, credentials_version, "
                "email_canonical = $1 AS exact FROM users "
                f"WHERE email_canonical = $1 OR ({_STRAGGLER}) LIMIT 1001",
                email.canonical,
                timeout=db.query_timeout(),
            )
        r = next((row for row in rows if row["exact"]), None) or next(
            (row for row in rows if emails.canonical(row["email"]) == email.canonical), None
        )
        if r is None:
            return None
        return Credentials(str(r["id"]), r["email"], r["password_hash"], r["credentials_version"])

    async def password_hash(self, user_id: str) -> str | None:
        async with self._conn() as conn:
            hashed: str | None = await conn.fetchval(
                "SELECT password_hash FROM users WHERE id = $1",
                uuid.UUID(user_id),
                timeout=db.query_timeout(),
            )
        return hashed

    async def pending_revocations(
        self, limit: int, user_id: str | None = None
    ) -> builtins.list[Revocation]:
        """Requests not yet confirmed by authsvc, oldest first (or just `user_id`'s)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT user_id, min_credentials_version, user_deleted "
                "FROM session_revocations WHERE $1::uuid IS NULL OR user_id = $1 "
                "ORDER BY requested_at LIMIT $2",
                uuid.UUID(user_id) if user_id else None,
                limit,
                timeout=db.query_timeout(),
            )
        return [
            Revocation(str(r["user_id"]), r["min_credentials_version"], r["user_deleted"])
            for r in rows
        ]

    async def revocation_delivered(self, done: Revocation) -> None:
        """Forget a request authsvc confirmed, unless a stronger one replaced it meanwhile."""
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM session_revocations WHERE user_id = $1 "
                "AND min_credentials_version <= $2 AND (user_deleted = $3 OR NOT user_deleted)",
                uuid.UUID(done.user_id),
                done.min_credentials_version,
                done.user_deleted,
                timeout=db.query_timeout(),
            )
