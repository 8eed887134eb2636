"""users_db access. All SQL for usersvc lives here (and in migrations/)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from libs.platform import db
from libs.platform.errors import AlreadyExists


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


_COLUMNS = "id, email, display_name, created_at, updated_at"


def _row(r: asyncpg.Record) -> UserRow:
    return UserRow(str(r["id"]), r["email"], r["display_name"], r["created_at"], r["updated_at"])


def _duplicate_email(email: str) -> AlreadyExists:
    return AlreadyExists(f"a user with email {email!r} already exists")


class UserStore:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = acquire_timeout

    def _conn(self):
        return db.acquire(self._pool, self._timeout)

    async def create(self, email: str, display_name: str, password_hash: str) -> UserRow:
        async with self._conn() as conn:
            try:
                r = await conn.fetchrow(
                    f"INSERT INTO users (id, email, display_name, password_hash) "
                    f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
                    uuid.uuid4(),
                    email,
                    display_name,
                    password_hash,
                    timeout=db.query_timeout(),
                )
            except asyncpg.UniqueViolationError:
                raise _duplicate_email(email) from None
        return _row(r)

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
        email: str | None,
        display_name: str | None,
        password_hash: str | None,
    ) -> UserRow | None:
        sets: list[str] = []
        args: list[object] = [uuid.UUID(user_id)]
        for column, value in (
            ("email", email),
            ("display_name", display_name),
            ("password_hash", password_hash),
        ):
            if value is not None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")
        if not sets:
            return await self.get(user_id)
        sets.append("updated_at = clock_timestamp()")
        async with self._conn() as conn:
            try:
                r = await conn.fetchrow(
                    f"UPDATE users SET {', '.join(sets)} WHERE id = $1 RETURNING {_COLUMNS}",
                    *args,
                    timeout=db.query_timeout(),
                )
            except asyncpg.UniqueViolationError:
                raise _duplicate_email(email or "") from None
        return _row(r) if r else None

    async def delete(self, user_id: str) -> bool:
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM users WHERE id = $1", uuid.UUID(user_id), timeout=db.query_timeout()
            )
        return status == "DELETE 1"

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

    async def credentials(self, email: str) -> Credentials | None:
        async with self._conn() as conn:
            r = await conn.fetchrow(
                "SELECT id, email, password_hash FROM users WHERE lower(email) = lower($1)",
                email,
                timeout=db.query_timeout(),
            )
        return Credentials(str(r["id"]), r["email"], r["password_hash"]) if r else None
