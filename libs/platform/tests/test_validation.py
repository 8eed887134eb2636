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
