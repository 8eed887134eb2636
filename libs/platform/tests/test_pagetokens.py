"""Page tokens: what the server makes round-trips; nothing else gets past decode()."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from libs.platform import pagetokens as pt
from libs.platform.errors import InvalidArgument

ROW = str(uuid.uuid4())


def _token(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_round_trip_keeps_the_instant_and_scope() -> None:
    at = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    token = pt.encode(pt.PageCursor(at, ROW, "scope-a"))
    assert "=" not in token
    cursor = pt.decode(token, scope="scope-a")
    assert cursor == pt.PageCursor(at, ROW, "scope-a")
    assert cursor.created_at.utcoffset() == dt.timedelta(0)  # what the driver sends anyway


def test_tokens_made_before_this_module_still_decode() -> None:
    # A rolling update: pages handed out by the previous version (libs/platform/validation.py
    # made them this way) must keep working.
    at = dt.datetime.now(dt.UTC)
    old = json.dumps({"t": at.isoformat(), "i": ROW, "s": "u1"}, separators=(",", ":"))
    token = base64.urlsafe_b64encode(old.encode()).decode().rstrip("=")
    assert pt.page_start(token, scope="u1") == (at, ROW)


def test_a_token_from_another_listing_says_so() -> None:
    token = pt.encode(pt.PageCursor(dt.datetime.now(dt.UTC), ROW, "a"))
    for scope in ("b", ""):
        with pytest.raises(InvalidArgument, match="different listing") as info:
            pt.decode(token, scope=scope)
        assert info.value.violations[0].field == "page_token"


TIME = "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "token",
    [
        # Timestamps that parse but cannot be sent to PostgreSQL as UTC.
        _token({"t": "0001-01-01T00:00:00+23:59", "i": ROW}),
        _token({"t": "9999-12-31T23:59:59-23:59", "i": ROW}),
        _token({"t": "2024-01-01T00:00:00", "i": ROW}),  # no time zone
        _token({"t": "yesterday", "i": ROW}),
        _token({"t": 1, "i": ROW}),
        _token({"t": None, "i": ROW}),
        _token({"t": TIME, "i": "x"}),
        _token({"t": TIME, "i": 7}),
        _token({"t": TIME, "i": ROW, "s": ["u1"]}),
        _token({"t": TIME, "i": ROW, "extra": 1}),
        _token({"t": TIME}),
        _token([TIME, ROW]),
        _token("a string"),
        _token(1e308),
        base64.urlsafe_b64encode(b"[" * 150 + b"]" * 150).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe not UTF-8").decode(),
        base64.urlsafe_b64encode(b"not json").decode(),
        "!!!",
        "é" + _token({"t": TIME, "i": ROW}),
        "A" * 1000,
    ],
)
def test_anything_the_server_did_not_make_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        pt.page_start(token)
    (violation,) = info.value.violations
    assert violation.field == "page_token"
    assert "next_page_token" in violation.description


def test_split_page_makes_a_token_only_when_a_row_is_left_over() -> None:
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    rows = [pt.PageCursor(t0 + dt.timedelta(seconds=i), str(uuid.uuid4())) for i in range(4)]
    assert pt.split_page(rows[:3], 3) == (rows[:3], "")
    page, token = pt.split_page(rows, 3, scope="u1")
    assert page == rows[:3]
    # The next page starts after the last row shown, and only under the same filter.
    assert pt.page_start(token, scope="u1") == (rows[2].created_at, rows[2].id)
    with pytest.raises(InvalidArgument, match="different listing"):
        pt.page_start(token)
    assert pt.page_start("") is None
