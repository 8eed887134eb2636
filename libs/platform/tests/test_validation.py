from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

from libs.platform import validation as v
from libs.platform.errors import InvalidArgument


def test_page_token_round_trip() -> None:
    cursor = v.PageCursor(
        dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC), str(uuid.uuid4()), "scope-a"
    )
    token = v.encode_page_token(cursor)
    assert "=" not in token
    assert v.decode_page_token(token, scope="scope-a") == cursor


def test_page_token_scope_mismatch() -> None:
    token = v.encode_page_token(v.PageCursor(dt.datetime.now(dt.UTC), str(uuid.uuid4()), "a"))
    with pytest.raises(InvalidArgument, match="different listing"):
        v.decode_page_token(token, scope="b")
    with pytest.raises(InvalidArgument, match="different listing"):
        v.decode_page_token(token)


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"t": "yesterday", "i": "x"}').decode(),
        base64.urlsafe_b64encode(
            b'{"t": "2024-01-01T00:00:00", "i": "' + str(uuid.uuid4()).encode() + b'"}'
        ).decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "A" * 1000,
    ],
)
def test_page_token_malformed(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        v.decode_page_token(token)
    assert info.value.violations[0].field == "page_token"


def test_email() -> None:
    assert v.email("  a.b+c@example.co.uk ") == "a.b+c@example.co.uk"
    for bad in ["", "a", "a@b", "a b@c.de", "@c.de"]:
        with pytest.raises(InvalidArgument):
            v.email(bad)


def test_uuid_and_page_size() -> None:
    u = uuid.uuid4()
    assert v.uuid_str(str(u).upper(), "id") == str(u)
    with pytest.raises(InvalidArgument, match="not a valid UUID"):
        v.uuid_str("123", "id")
    assert v.page_size(0) == 20
    assert v.page_size(500) == 100
    with pytest.raises(InvalidArgument):
        v.page_size(-1)


def test_split_page_makes_a_token_only_when_a_row_is_left_over() -> None:
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    rows = [v.PageCursor(t0 + dt.timedelta(seconds=i), str(uuid.uuid4())) for i in range(4)]
    assert v.split_page(rows[:3], 3) == (rows[:3], "")
    page, token = v.split_page(rows, 3, scope="u1")
    assert page == rows[:3]
    # The next page starts after the last row shown, and only under the same filter.
    assert v.page_start(token, scope="u1") == (rows[2].created_at, rows[2].id)
    with pytest.raises(InvalidArgument, match="different listing"):
        v.page_start(token)
    assert v.page_start("") is None
