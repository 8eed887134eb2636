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


# A session may be opened or refreshed only above the user's floor (RevokeUserSessions).
_BELOW_FLOOR = """
SELECT EXISTS (
    SELECT 1 FROM session_floors
    WHERE user_id = $1 AND (user_deleted OR min_credentials_version > $2)
)
"""


async def _lock_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Serializes RevokeUserSessions with the opening and refreshing of that user's sessions,
    so a session can never slip in between a revocation's floor and its sweep."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sessions:' || $1, 0))",
        str(user_id),
        timeout=db.query_timeout(),
    )


class RefreshTokenStore:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = acquire_timeout

    def _conn(self) -> db.Acquire:
        return db.acquire(self._pool, self._timeout)

    async def create(
        self,
        token_hash: str,
        user_id: str,
        family_id: str | None,
        expires_at: dt.datetime,
        credentials_version: int = 0,
    ) -> bool:
        """Store a new session's first token; False if the user's sessions were revoked
        above `credentials_version` (the password just checked was already an old one) or
        the user was deleted."""
        uid = uuid.UUID(user_id)
        async with self._conn() as conn, conn.transaction():
            await _lock_user(conn, uid)
            if await conn.fetchval(
                _BELOW_FLOOR, uid, credentials_version, timeout=db.query_timeout()
            ):
                return False
            await conn.execute(
                "INSERT INTO refresh_tokens "
                "(token_hash, family_id, user_id, expires_at, credentials_version) "
                "VALUES ($1, $2, $3, $4, $5)",
                token_hash,
                uuid.UUID(family_id) if family_id else uuid.uuid4(),
                uid,
                expires_at,
                credentials_version,
                timeout=db.query_timeout(),
            )
        return True

    async def revoke_user(self, user_id: str, min_credentials_version: int, deleted: bool) -> int:
        """Raise the user's floor and revoke every live token below it; returns how many.

        The floor only ever rises, so a request delivered late or twice changes nothing.
        """
        uid = uuid.UUID(user_id)
        async with self._conn() as conn, conn.transaction():
            await _lock_user(conn, uid)
            floor = await conn.fetchrow(
                "INSERT INTO session_floors (user_id, min_credentials_version, user_deleted) "
                "VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET "
                "min_credentials_version = greatest(session_floors.min_credentials_version, "
                "EXCLUDED.min_credentials_version), "
                "user_deleted = session_floors.user_deleted OR EXCLUDED.user_deleted, "
                "updated_at = clock_timestamp() "
                "RETURNING min_credentials_version, user_deleted",
                uid,
                min_credentials_version,
                deleted,
                timeout=db.query_timeout(),
            )
            status = await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = clock_timestamp() "
                "WHERE user_id = $1 AND revoked_at IS NULL "
                "AND ($2 OR credentials_version < $3)",
                uid,
                floor["user_deleted"],
                floor["min_credentials_version"],
                timeout=db.query_timeout(),
            )
        return int(status.split()[-1])

    async def rotate(
        self, old_hash: str, new_hash: str, new_expires_at: dt.datetime
    ) -> RotateResult:
        """Mark old token used and insert its successor in the same family, atomically.

        The row lock serializes concurrent refreshes of one token: exactly one rotates, the
        others see it used and revoke the family (that is what reuse detection means).
        """
        async with self._conn() as conn, conn.transaction():
            # The user lock comes before the row lock, in the same order as revoke_user().
            owner = await conn.fetchval(
                "SELECT user_id FROM refresh_tokens WHERE token_hash = $1",
                old_hash,
                timeout=db.query_timeout(),
            )
            if owner is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            await _lock_user(conn, owner)
            row = await conn.fetchrow(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at, credentials_version, "
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
            if await conn.fetchval(
                _BELOW_FLOOR, owner, row["credentials_version"], timeout=db.query_timeout()
            ):
                # Revoked by RevokeUserSessions; the sweep already marked it, this is a guard.
                return RotateResult(RotateOutcome.REVOKED)
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = clock_timestamp() WHERE token_hash = $1",
                old_hash,
                timeout=db.query_timeout(),
            )
            await conn.execute(
                "INSERT INTO refresh_tokens "
                "(token_hash, family_id, user_id, expires_at, credentials_version) "
                "VALUES ($1, $2, $3, $4, $5)",
                new_hash,
                row["family_id"],
                row["user_id"],
                new_expires_at,
                row["credentials_version"],
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
