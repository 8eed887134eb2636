"""auth_db access. All SQL for authsvc lives here (and in migrations/)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

import asyncpg

from libs.platform import db


class RotateOutcome(enum.Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"  # an already-rotated token came back: the family is now revoked


@dataclass(frozen=True)
class RotateResult:
    outcome: RotateOutcome
    user_id: str | None = None


class RefreshTokenStore:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = acquire_timeout

    def _conn(self):
        return db.acquire(self._pool, self._timeout)

    async def create(
        self, token_hash: str, user_id: str, family_id: str | None, expires_at: dt.datetime
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) "
                "VALUES ($1, $2, $3, $4)",
                token_hash,
                uuid.UUID(family_id) if family_id else uuid.uuid4(),
                uuid.UUID(user_id),
                expires_at,
                timeout=db.query_timeout(),
            )

    async def rotate(
        self, old_hash: str, new_hash: str, new_expires_at: dt.datetime
    ) -> RotateResult:
        """Mark old token used and insert its successor in the same family, atomically.

        The row lock serializes concurrent refreshes of one token: exactly one rotates, the
        others see it used and revoke the family (that is what reuse detection means).
        """
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at, "
                "clock_timestamp() AS now FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                old_hash,
                timeout=db.query_timeout(),
            )
            if row is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            if row["revoked_at"] is not None:
                return RotateResult(RotateOutcome.REVOKED)
            if row["used_at"] is not None:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = clock_timestamp() "
                    "WHERE family_id = $1 AND revoked_at IS NULL",
                    row["family_id"],
                    timeout=db.query_timeout(),
                )
                return RotateResult(RotateOutcome.REUSED)
            if row["expires_at"] <= row["now"]:
                return RotateResult(RotateOutcome.EXPIRED)
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = clock_timestamp() WHERE token_hash = $1",
                old_hash,
                timeout=db.query_timeout(),
            )
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) "
                "VALUES ($1, $2, $3, $4)",
                new_hash,
                row["family_id"],
                row["user_id"],
                new_expires_at,
                timeout=db.query_timeout(),
            )
            return RotateResult(RotateOutcome.ROTATED, str(row["user_id"]))

    async def revoke_family_of(self, token_hash: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = clock_timestamp() "
                "WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) "
                "AND revoked_at IS NULL",
                token_hash,
                timeout=db.query_timeout(),
            )
