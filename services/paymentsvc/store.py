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
    # Chosen by the caller, so a row can be matched to its request in a batched insert
    # (and two identical requests without an idempotency key stay two payments).
    id: str
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

    def _conn(self) -> db.Acquire:
        return db.acquire(self._pool, self._timeout)

    async def create_many(
        self, payments: list[NewPayment], time_limit: float
    ) -> dict[NewPayment, tuple[PaymentRow, bool]]:
        """Insert payments in one statement; for each, its row and whether it was created.

        A payment whose (user_id, idempotency_key) is taken, by an earlier call or by an
        earlier payment in the same list, is not inserted: it gets the row holding the key
        and created=False. ON CONFLICT DO NOTHING waits for a concurrent insert of the same
        key to commit, so the SELECT that follows always finds the winner. time_limit bounds
        the statements: they serve a batch, so no one request's deadline applies.
        """
        # One order for every batch: two batches inserting the same keys in opposite
        # orders would each wait for the other's uncommitted key (a deadlock).
        payments = sorted(payments, key=lambda p: (p.user_id, p.idempotency_key or "", p.id))
        async with self._conn() as conn:
            inserted = await conn.fetch(
                "INSERT INTO payments (id, user_id, amount, currency, status, description, "
                "idempotency_key, request_hash) "
                "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], "
                "$5::text[], $6::text[], $7::text[], $8::text[]) "
                "ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL "
                f"DO NOTHING RETURNING {_COLUMNS}",
                [uuid.UUID(p.id) for p in payments],
                [uuid.UUID(p.user_id) for p in payments],
                [p.amount for p in payments],
                [p.currency for p in payments],
                [p.status for p in payments],
                [p.description for p in payments],
                [p.idempotency_key for p in payments],
                [p.request_hash for p in payments],
                timeout=time_limit,
            )
            created = {row.id: row for row in map(_row, inserted)}
            taken = [p for p in payments if p.id not in created]
            holders: dict[tuple[str, str | None], PaymentRow] = {}
            if taken:
                found = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM payments WHERE (user_id, idempotency_key) IN "
                    "(SELECT * FROM unnest($1::uuid[], $2::text[]))",
                    [uuid.UUID(p.user_id) for p in taken],
                    [p.idempotency_key for p in taken],
                    timeout=time_limit,
                )
                holders = {(row.user_id, row.idempotency_key): row for row in map(_row, found)}
        result: dict[NewPayment, tuple[PaymentRow, bool]] = {}
        for p in payments:
            if p.id in created:
                result[p] = (created[p.id], True)
            elif (holder := holders.get((p.user_id, p.idempotency_key))) is not None:
                result[p] = (holder, False)
            # Else only a row deleted in between: no value, so its caller gets an error.
        return result

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
