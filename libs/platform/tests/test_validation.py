from __future__ import annotations

import uuid

import pytest

from libs.platform import validation as v
from libs.platform.errors import InvalidArgument


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


def test_violations_reports_every_bad_field_at_once() -> None:
    with pytest.raises(InvalidArgument) as info, v.Violations() as bad:
        assert bad.check(v.uuid_str, "nope", "user_id") is None
        assert bad.check(v.length, "ok", "name", max_len=10) == "ok"
        bad.add("amount", "must be positive")
        bad.check(v.page_size, -1)
    assert [(x.field, x.description) for x in info.value.violations] == [
        ("user_id", "'nope' is not a valid UUID"),
        ("amount", "must be positive"),
        ("page_size", "must not be negative"),
    ]


def test_violations_without_problems_returns_the_checked_values() -> None:
    u = str(uuid.uuid4())
    with v.Violations() as bad:
        user_id = bad.check(v.uuid_str, u.upper(), "user_id")
    assert user_id == u


def test_violations_let_another_exception_through() -> None:
    # A bug inside the block is not the caller's mistake: it must not become INVALID_ARGUMENT.
    with pytest.raises(KeyError), v.Violations() as bad:
        bad.add("x", "is wrong")
        raise KeyError("bug")
