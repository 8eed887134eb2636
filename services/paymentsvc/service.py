"""payment.v1.PaymentService: validation, user check via usersvc, idempotency, mapping."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import unicodedata
import uuid

import grpc

from libs.platform import clients, db, deadlines, pagetokens
from libs.platform import validation as v
from libs.platform.admission import RateLimiter, abort_retry_later
from libs.platform.auth.principals import current_principal, require_user_or_service
from libs.platform.batching import Coalescer
from libs.platform.errors import (
    DEPENDENCY_UNAVAILABLE,
    AlreadyExists,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from libs.platform.protoutil import timestamp
from libs.platform.rpc_types import Context
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc.currencies import ACTIVE_CURRENCIES, minor_units
from services.paymentsvc.store import NewPayment, PaymentRow, PaymentStore
from user.v1 import user_pb2, user_pb2_grpc

log = logging.getLogger(__name__)

# Per payment, in major units of its currency (PAYMENT_MAX_MAJOR_UNITS).
DEFAULT_MAX_MAJOR_UNITS = 1_000_000_000
MAX_IDEMPOTENCY_KEY = 128
MAX_DESCRIPTION = 500
STATUS_COMPLETED = "COMPLETED"
# usersvc's BatchGetUsers limit.
MAX_USER_BATCH = 100
MAX_INSERT_BATCH = 100

_STATUS_TO_PB = {
    "PENDING": payment_pb2.PAYMENT_STATUS_PENDING,
    "COMPLETED": payment_pb2.PAYMENT_STATUS_COMPLETED,
    "FAILED": payment_pb2.PAYMENT_STATUS_FAILED,
}


def _payment_pb(row: PaymentRow) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payment_id=row.id,
        user_id=row.user_id,
        amount=row.amount,
        currency=row.currency,
        status=_STATUS_TO_PB.get(row.status, payment_pb2.PAYMENT_STATUS_UNSPECIFIED),
        description=row.description,
        created_at=timestamp(row.created_at),
        idempotency_key=row.idempotency_key or "",
    )


def _caller_may_read(row: PaymentRow) -> bool:
    """Whether the caller may see this payment: its user, or a trusted service."""
    try:
        require_user_or_service(row.user_id)
    except PermissionDenied:
        return False
    return True


def request_hash(amount: int, currency: str, description: str) -> str:
    """Fingerprint of what a retry must repeat exactly (user and key are the lookup key)."""
    canonical = json.dumps([amount, currency, description], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class PaymentService(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(
        self,
        store: PaymentStore,
        users: user_pb2_grpc.UserServiceAsyncStub,
        *,
        default_currency: str,
        users_timeout: float,
        max_major_units: int = DEFAULT_MAX_MAJOR_UNITS,
        payments_per_user: RateLimiter | None = None,
    ) -> None:
        self._store = store
        self._users = users
        self._default_currency = default_currency
        self._users_timeout = users_timeout
        self._max_major_units = max_major_units
        # None: no limit (the bench's single user pays thousands of times a second).
        self._per_user = payments_per_user
        # Concurrent payments share one usersvc call to check their users, and one INSERT
        # (and commit) to store them (see libs/platform/batching.py).
        self._user_checks: Coalescer[str, bool] = Coalescer(
            self._users_exist, max_batch=MAX_USER_BATCH
        )
        self._inserts: Coalescer[NewPayment, tuple[PaymentRow, bool]] = Coalescer(
            self._store.create_many, max_batch=MAX_INSERT_BATCH
        )

    def _validate_create(self, req: payment_pb2.CreatePaymentRequest) -> NewPayment:
        # ASCII before upper(): Unicode case mapping would turn "uſd" into "USD".
        typed = req.currency.strip()
        currency = (typed.upper() if typed.isascii() else typed) or self._default_currency
        with v.Violations() as bad:
            user_id = bad.check(v.uuid_str, req.user_id, "user_id")
            if req.amount <= 0:
                bad.add("amount", "must be a positive number of minor units (e.g. cents)")
            elif currency in ACTIVE_CURRENCIES:
                # The cap is in major units, so a yen and a dinar payment may each be
                # worth the same number of units, whatever their minor units.
                digits = minor_units(currency)
                if req.amount > self._max_major_units * 10**digits:
                    bad.add(
                        "amount",
                        f"must be at most {self._max_major_units:,} {currency} "
                        f"({self._max_major_units * 10**digits} minor units)",
                    )
            if currency not in ACTIVE_CURRENCIES:
                bad.add(
                    "currency", f"{req.currency[:16]!r} is not an active ISO 4217 currency code"
                )
            if len(req.idempotency_key) > MAX_IDEMPOTENCY_KEY:
                bad.add("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
            elif any(unicodedata.category(ch) == "Cc" for ch in req.idempotency_key):
                # Control characters (NUL, ESC, newlines...) end up in logs and terminals.
                bad.add("idempotency_key", "must not contain control characters")
            if len(req.description) > MAX_DESCRIPTION:
                bad.add("description", f"must be at most {MAX_DESCRIPTION} characters")
            elif "\x00" in req.description:
                bad.add("description", "must not contain NUL characters")
        key = req.idempotency_key or None
        return NewPayment(
            id=str(uuid.uuid4()),
            user_id=user_id,
            amount=req.amount,
            currency=currency,
            status=STATUS_COMPLETED,
            description=req.description,
            idempotency_key=key,
            request_hash=request_hash(req.amount, currency, req.description) if key else None,
        )

    async def _require_user(self, user_id: str) -> None:
        timeout = deadlines.budget(self._users_timeout)
        try:
            exists = await self._user_checks.get(user_id, timeout)
        except TimeoutError:
            # Gave up waiting for a shared check: the same answer as a timed-out call.
            raise clients.dependency_failed("usersvc", grpc.StatusCode.DEADLINE_EXCEEDED) from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                # usersvc refused paymentsvc's own service token: a deployment problem.
                log.error("usersvc refused paymentsvc's service token: %s", exc.details())
                raise Unavailable(
                    DEPENDENCY_UNAVAILABLE, detail="usersvc refused the service token"
                ) from None
            raise
        if not exists:
            raise NotFound(f"user {user_id} does not exist")

    async def _require_live_user_caller(self) -> None:
        """Refuse a user whose account is gone.

        An access token outlives a deleted account by up to its lifetime (15 min); reads
        would otherwise keep answering for it. The check shares the batched user lookup
        that CreatePayment uses, so concurrent reads cost one usersvc call.
        """
        principal = current_principal()
        if principal.is_service:
            return
        try:
            await self._require_user(principal.subject)
        except NotFound:
            raise Unauthenticated(
                "the account behind this token no longer exists; log in again"
            ) from None

    async def _users_exist(self, user_ids: list[str], time_limit: float) -> dict[str, bool]:
        """Whether each user exists: one BatchGetUsers call while all of them do."""
        try:
            await clients.call(
                self._users.BatchGetUsers,
                user_pb2.BatchGetUsersRequest(user_ids=user_ids),
                dependency="usersvc",
                deadline=time_limit,
            )
            return dict.fromkeys(user_ids, True)
        except grpc.aio.AioRpcError as exc:
            # NOT_FOUND fails the whole batch (AIP-231) without saying which users are
            # missing; UNIMPLEMENTED is a usersvc older than BatchGetUsers (rolling update).
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                raise
        found = await asyncio.gather(*(self._user_exists(u, time_limit) for u in user_ids))
        return dict(zip(user_ids, found, strict=True))

    async def _user_exists(self, user_id: str, time_limit: float) -> bool:
        try:
            await clients.call(
                self._users.GetUser,
                user_pb2.GetUserRequest(user_id=user_id),
                dependency="usersvc",
                deadline=time_limit,
            )
            return True
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise

    async def CreatePayment(  # noqa: N802 - gRPC method names
        self, request: payment_pb2.CreatePaymentRequest, context: Context
    ) -> payment_pb2.CreatePaymentResponse:
        new = self._validate_create(request)
        principal = require_user_or_service(new.user_id)
        if self._per_user is not None and not principal.is_service:
            wait = self._per_user.take(new.user_id)
            if wait is not None:
                await abort_retry_later(context, "too many payments for this user", wait)
        await self._require_user(new.user_id)
        row, created = await self._inserts.get(new, db.query_timeout())
        if not created and row.request_hash != new.request_hash:
            raise AlreadyExists(
                f"idempotency_key {new.idempotency_key!r} was already used for a different "
                f"payment ({row.id}); use a new key for a new payment"
            )
        return payment_pb2.CreatePaymentResponse(
            payment_id=row.id,
            status=_STATUS_TO_PB[row.status],
            amount=row.amount,
            currency=row.currency,
            created_at=timestamp(row.created_at),
        )

    async def GetPayment(  # noqa: N802
        self, request: payment_pb2.GetPaymentRequest, context: Context
    ) -> payment_pb2.GetPaymentResponse:
        payment_id = v.uuid_str(request.payment_id, "payment_id")
        await self._require_live_user_caller()
        row = await self._store.get(payment_id)
        if row is None or not _caller_may_read(row):
            # Someone else's payment gets the same answer as a missing one: any other
            # answer would tell the caller that the id exists.
            raise NotFound(f"payment {payment_id} does not exist")
        return payment_pb2.GetPaymentResponse(payment=_payment_pb(row))

    async def ListPayments(  # noqa: N802
        self, request: payment_pb2.ListPaymentsRequest, context: Context
    ) -> payment_pb2.ListPaymentsResponse:
        user_id = v.uuid_str(request.user_id, "user_id")
        require_user_or_service(user_id)
        size = v.page_size(request.page_size)
        await self._require_live_user_caller()
        # The token is bound to the user filter: paging with it under another user would
        # silently skip or repeat rows.
        before = pagetokens.page_start(request.page_token, scope=user_id)
        rows = await self._store.list_for_user(user_id, size + 1, before)
        rows, next_token = pagetokens.split_page(rows, size, scope=user_id)
        return payment_pb2.ListPaymentsResponse(
            payments=[_payment_pb(r) for r in rows], next_page_token=next_token
        )
