from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import grpc
import pytest

from libs.platform.testing.batches import record_batches
from libs.platform.testing.grpc_errors import field_violations
from payment.v1 import payment_pb2


async def expect_error(coro, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    assert info.value.code() == code, info.value.details()
    return info.value


def req(user_id: str, **kw) -> payment_pb2.CreatePaymentRequest:
    kw.setdefault("amount", 1999)
    return payment_pb2.CreatePaymentRequest(user_id=user_id, **kw)


async def row_count(paymentsvc) -> int:
    return await paymentsvc.pool.fetchval("SELECT count(*) FROM payments")


async def test_create_and_get_payment(stub, users) -> None:
    uid = users.add()
    created = await stub.CreatePayment(req(uid, currency="eur", description="coffee"))
    assert created.status == payment_pb2.PAYMENT_STATUS_COMPLETED
    assert (created.amount, created.currency) == (1999, "EUR")
    got = await stub.GetPayment(payment_pb2.GetPaymentRequest(payment_id=created.payment_id))
    p = got.payment
    assert (p.payment_id, p.user_id, p.amount, p.currency) == (created.payment_id, uid, 1999, "EUR")
    assert p.description == "coffee"
    assert p.status == payment_pb2.PAYMENT_STATUS_COMPLETED
    assert p.created_at == created.created_at


async def test_default_currency(stub, users) -> None:
    created = await stub.CreatePayment(req(users.add()))
    assert created.currency == "USD"


@pytest.mark.parametrize(
    ("currency", "largest"),
    [("USD", 10**11), ("JPY", 10**9), ("KWD", 10**12), ("BHD", 10**12)],
)
async def test_amount_cap_is_in_major_units(stub, users, currency, largest) -> None:
    """Third round: 10^12 minor units was the cap for every currency, worth a thousand
    times more in dinars than in yen. The cap is now 10^9 major units of each."""
    uid = users.add()
    ok = await stub.CreatePayment(req(uid, amount=largest, currency=currency))
    assert ok.amount == largest
    err = await expect_error(
        stub.CreatePayment(req(uid, amount=largest + 1, currency=currency)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert f"must be at most 1,000,000,000 {currency}" in field_violations(err)["amount"]


async def test_currency_code_any_ascii_case(stub, users) -> None:
    created = await stub.CreatePayment(req(users.add(), currency=" eUr "))
    assert created.currency == "EUR"


async def test_unknown_user_is_not_found(stub, paymentsvc) -> None:
    uid = str(uuid.uuid4())
    err = await expect_error(stub.CreatePayment(req(uid)), grpc.StatusCode.NOT_FOUND)
    assert err.details() == f"user {uid} does not exist"
    assert await row_count(paymentsvc) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 1_000_000_000_001}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"idempotency_key": "k" * 129}, "idempotency_key"),
        ({"description": "d" * 501}, "description"),
        # Third round, info findings: Unicode case mapping made "uſd" USD; control
        # characters (an ANSI escape, a newline) reached logs and terminals.
        ({"currency": "u\u017fd"}, "currency"),
        ({"currency": "\uff35\uff33\uff24"}, "currency"),
        ({"idempotency_key": "order-1\x1b[31m"}, "idempotency_key"),
        ({"idempotency_key": "order-1\n"}, "idempotency_key"),
    ],
)
async def test_create_payment_invalid(stub, users, paymentsvc, kwargs, field) -> None:
    err = await expect_error(
        stub.CreatePayment(req(users.add(), **kwargs)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert field in field_violations(err)
    assert await row_count(paymentsvc) == 0


async def test_malformed_user_id_does_not_call_usersvc(stub, users) -> None:
    err = await expect_error(stub.CreatePayment(req("42")), grpc.StatusCode.INVALID_ARGUMENT)
    assert "user_id" in field_violations(err)
    assert users.calls == 0


async def test_idempotent_retry_returns_first_payment(stub, users, paymentsvc) -> None:
    uid = users.add()
    first = await stub.CreatePayment(req(uid, idempotency_key="order-1", description="x"))
    again = await stub.CreatePayment(req(uid, idempotency_key="order-1", description="x"))
    assert again.payment_id == first.payment_id
    assert again.created_at == first.created_at
    assert await row_count(paymentsvc) == 1
    # The same key for another user is a different payment.
    other = await stub.CreatePayment(req(users.add(), idempotency_key="order-1", description="x"))
    assert other.payment_id != first.payment_id
    assert await row_count(paymentsvc) == 2


async def test_idempotency_key_reuse_with_different_request(stub, users, paymentsvc) -> None:
    uid = users.add()
    first = await stub.CreatePayment(req(uid, idempotency_key="k1"))
    err = await expect_error(
        stub.CreatePayment(req(uid, idempotency_key="k1", amount=5)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "k1" in err.details()
    assert "different" in err.details()
    assert first.payment_id in err.details()
    assert await row_count(paymentsvc) == 1


async def test_concurrent_idempotent_retries_write_one_row(stub, users, paymentsvc) -> None:
    uid = users.add()
    results = await asyncio.gather(
        *(stub.CreatePayment(req(uid, idempotency_key="burst")) for _ in range(20))
    )
    assert len({r.payment_id for r in results}) == 1
    assert await row_count(paymentsvc) == 1


async def test_without_key_every_call_creates(stub, users, paymentsvc) -> None:
    uid = users.add()
    a = await stub.CreatePayment(req(uid))
    b = await stub.CreatePayment(req(uid))
    assert a.payment_id != b.payment_id
    assert await row_count(paymentsvc) == 2


async def test_get_payment_errors(stub) -> None:
    await expect_error(
        stub.GetPayment(payment_pb2.GetPaymentRequest(payment_id="x")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        stub.GetPayment(payment_pb2.GetPaymentRequest(payment_id=str(uuid.uuid4()))),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_list_payments_newest_first_with_pages(stub, users) -> None:
    uid, other = users.add(), users.add()
    ids = [(await stub.CreatePayment(req(uid, amount=i + 1))).payment_id for i in range(5)]
    await stub.CreatePayment(req(other))
    seen: list[str] = []
    token = ""
    while True:
        resp = await stub.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id=uid, page_size=2, page_token=token)
        )
        assert all(p.user_id == uid for p in resp.payments)
        seen += [p.payment_id for p in resp.payments]
        token = resp.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))


async def test_list_payments_token_bound_to_user(stub, users) -> None:
    uid, other = users.add(), users.add()
    for _ in range(3):
        await stub.CreatePayment(req(uid))
    resp = await stub.ListPayments(payment_pb2.ListPaymentsRequest(user_id=uid, page_size=1))
    assert resp.next_page_token
    err = await expect_error(
        stub.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id=other, page_token=resp.next_page_token)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in field_violations(err)


async def test_list_payments_bad_input(stub) -> None:
    await expect_error(
        stub.ListPayments(payment_pb2.ListPaymentsRequest(user_id="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        stub.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id=str(uuid.uuid4()), page_token="%%%")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_usersvc_timeout_is_unavailable(stub, users, paymentsvc, caplog) -> None:
    uid = users.add()
    users.delay = 2.0  # longer than the 0.5 s deadline
    with caplog.at_level(logging.INFO, logger="rpc"):
        err = await expect_error(stub.CreatePayment(req(uid)), grpc.StatusCode.UNAVAILABLE)
    # The caller learns nothing of the system's insides; paymentsvc's log line names them.
    assert err.details() == "a backing service is temporarily unavailable; retry later"
    details = [getattr(r, "detail", None) for r in caplog.records if r.name == "rpc"]
    assert "usersvc: DEADLINE_EXCEEDED" in details
    assert await row_count(paymentsvc) == 0


async def test_usersvc_down_is_unavailable(database_url, users, jwks, service_keys) -> None:
    from libs.platform.testing.net import free_port
    from libs.platform.testing.security import bearer
    from services.paymentsvc import app

    from .conftest import make_settings

    dead = free_port()  # nothing listens there
    running = await app.start(make_settings(database_url, dead, jwks.port, service_keys))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            from payment.v1 import payment_pb2_grpc

            uid = users.add()
            err = await expect_error(
                payment_pb2_grpc.PaymentServiceStub(ch).CreatePayment(
                    req(uid), metadata=bearer(jwks.mint(uid))
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
            # Which dependency failed is in paymentsvc's log, not in the caller's message.
            assert err.details() == "a backing service is temporarily unavailable; retry later"
    finally:
        await running.stop(0)


async def test_concurrent_payments_share_usersvc_checks(stub, users, paymentsvc) -> None:
    uids = [users.add() for _ in range(5)]
    users.delay = 0.05  # keeps a check in flight while the others arrive
    created = await asyncio.gather(*(stub.CreatePayment(req(uids[i % 5])) for i in range(60)))
    assert len({c.payment_id for c in created}) == 60
    assert await row_count(paymentsvc) == 60
    # The first check goes out alone; the rest wait for a free slot and go out together.
    assert users.calls < 10, users.batch_sizes
    assert sum(users.batch_sizes) < 60 and max(users.batch_sizes) <= 5


async def test_missing_user_in_a_batch_fails_only_its_own_payment(stub, users, paymentsvc) -> None:
    uids = [users.add() for _ in range(4)]
    gone = str(uuid.uuid4())
    users.delay = 0.05
    results = await asyncio.gather(
        *(stub.CreatePayment(req(u)) for u in [*uids, gone, *uids]), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert [e.code() for e in failed] == [grpc.StatusCode.NOT_FOUND]
    assert gone in failed[0].details()
    assert await row_count(paymentsvc) == 8


async def test_usersvc_without_batch_get_is_still_used(stub, users, paymentsvc) -> None:
    users.batch = False  # a usersvc from before BatchGetUsers, during a rolling update
    uid = users.add()
    await stub.CreatePayment(req(uid))
    await expect_error(stub.CreatePayment(req(str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND)
    assert await row_count(paymentsvc) == 1


@pytest.fixture
def insert_statements(monkeypatch) -> list[list[Any]]:
    """The payments of each PaymentStore.create_many statement (patched before the app
    starts, which binds the method)."""
    from services.paymentsvc.store import PaymentStore

    return record_batches(monkeypatch, PaymentStore, "create_many")


async def test_concurrent_payments_share_inserts(insert_statements, stub, users, paymentsvc):
    uid = users.add()
    created = await asyncio.gather(*(stub.CreatePayment(req(uid)) for _ in range(40)))
    # Identical requests without a key are separate payments, even in one statement.
    assert len({c.payment_id for c in created}) == 40
    assert await row_count(paymentsvc) == 40
    sizes = [len(statement) for statement in insert_statements]
    assert len(sizes) < 10 and sum(sizes) == 40, sizes


async def test_keys_in_one_batch_keep_idempotency(stub, users, paymentsvc) -> None:
    uid, other = users.add(), users.add()
    users.delay = 0.05  # lets the whole burst gather behind the first user check
    calls = (
        [req(uid, idempotency_key="same", description="a") for _ in range(5)]
        + [req(uid, idempotency_key="clash", amount=1 + i) for i in range(3)]
        + [req(other, idempotency_key="same", description="a")]
        + [req(uid, idempotency_key=f"k{i}") for i in range(10)]
    )
    results = await asyncio.gather(*(stub.CreatePayment(c) for c in calls), return_exceptions=True)
    same = {r.payment_id for r in results[:5] if not isinstance(r, BaseException)}
    assert len(same) == 1  # five retries, one payment
    clash = results[5:8]
    refused = [r for r in clash if isinstance(r, grpc.aio.AioRpcError)]
    assert [e.code() for e in refused] == [grpc.StatusCode.ALREADY_EXISTS] * 2
    assert not isinstance(results[8], BaseException) and results[8].payment_id not in same
    assert all(not isinstance(r, BaseException) for r in results[9:])
    # same (1) + clash (1) + the other user's "same" (1) + k0..k9 (10)
    assert await row_count(paymentsvc) == 13
