"""payments_db access. All SQL for paymentsvc lives here (and in migrations/)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from libs.platform import db

_COLUMNS = (
    "id, user_id, amount, currency, status, description, idempotency_key, request_hash, created_at"
)


@dataclass(frozen=True)
class PaymentRow:
    id: str
    user_id: str
    amount: int
    currency: str
    status: str
    description: str
    idempotency_key: str | None
    request_hash: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class NewPayment:
    user_id: str
    amount: int
    currency: str
    status: str
    description: str
    idempotency_key: str | None
    request_hash: str | None


def _row(r: asyncpg.Record) -> PaymentRow:
    return PaymentRow(
        id=str(r["id"]),
        user_id=str(r["user_id"]),
        amount=r["amount"],
        currency=r["currency"],
        status=r["status"],
        description=r["description"],
        idempotency_key=r["idempotency_key"],
        request_hash=r["request_hash"],
        created_at=r["created_at"],
    )


class PaymentStore:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = acquire_timeout

    def _conn(self):
        return db.acquire(self._pool, self._timeout)

    async def create(self, p: NewPayment) -> tuple[PaymentRow, bool]:
        """Insert, or return the existing row for (user_id, idempotency_key).

        Returns (row, created). ON CONFLICT DO NOTHING waits for a concurrent insert of the
        same key to commit, so the SELECT that follows always finds the winner.
        """
        args = (
            uuid.uuid4(),
            uuid.UUID(p.user_id),
            p.amount,
            p.currency,
            p.status,
            p.description,
            p.idempotency_key,
            p.request_hash,
        )
        async with self._conn() as conn:
            r = await conn.fetchrow(
                "INSERT INTO payments (id, user_id, amount, currency, status, description, "
                "idempotency_key, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL "
                f"DO NOTHING RETURNING {_COLUMNS}",
                *args,
                timeout=db.query_timeout(),
            )
            if r is not None:
                return _row(r), True
            existing = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM payments WHERE user_id = $1 AND idempotency_key = $2",
                uuid.UUID(p.user_id),
                p.idempotency_key,
                timeout=db.query_timeout(),
            )
        if existing is None:  # only possible if the row was deleted in between
            raise RuntimeError("idempotent insert conflicted but no row was found")
        return _row(existing), False

    async def get(self, payment_id: str) -> PaymentRow | None:
        async with self._conn() as conn:
            r = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM payments WHERE id = $1",
                uuid.UUID(payment_id),
                timeout=db.query_timeout(),
            )
        return _row(r) if r else None

    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None
    ) -> list[PaymentRow]:
        async with self._conn() as conn:
            if before is None:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM payments WHERE user_id = $1 "
                    "ORDER BY created_at DESC, id DESC LIMIT $2",
                    uuid.UUID(user_id),
                    limit,
                    timeout=db.query_timeout(),
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM payments WHERE user_id = $1 "
                    "AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
                    uuid.UUID(user_id),
                    before[0],
                    uuid.UUID(before[1]),
                    limit,
                    timeout=db.query_timeout(),
                )
        return [_row(r) for r in rows]
