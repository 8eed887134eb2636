"""Input checks shared by handlers. Each raises InvalidArgument naming the field."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Protocol, TypeVar

from libs.platform.errors import InvalidArgument

MAX_EMAIL_LENGTH = 254
# Deliberately loose: deliverability is proven by sending mail, not by a regex.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def email(value: str, field: str = "email") -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument.field(field, "is required")
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidArgument.field(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL_RE.match(value) or "\x00" in value:
        raise InvalidArgument.field(field, f"{value!r} is not a valid email address")
    return value


def uuid_str(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError):
        raise InvalidArgument.field(field, f"{value[:64]!r} is not a valid UUID") from None
    return str(parsed)


def no_nul(value: str, field: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it from becoming INTERNAL.
    if "\x00" in value:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    return value


def length(value: str, field: str, *, min_len: int = 0, max_len: int) -> str:
    if len(value) < min_len:
        if min_len == 1:
            raise InvalidArgument.field(field, "is required")
        raise InvalidArgument.field(field, f"must be at least {min_len} characters")
    if len(value) > max_len:
        raise InvalidArgument.field(
            field, f"must be at most {max_len} characters (got {len(value)})"
        )
    return no_nul(value, field)


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class PageCursor:
    """Keyset position: the last row of the previous page, plus the filter it belongs to."""

    created_at: dt.datetime
    id: str
    scope: str = ""


def encode_page_token(cursor: PageCursor) -> str:
    payload = {"t": cursor.created_at.isoformat(), "i": cursor.id}
    if cursor.scope:
        payload["s"] = cursor.scope
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, *, scope: str = "", field: str = "page_token") -> PageCursor:
    """Parse a token from encode_page_token; a token minted for another scope is refused."""
    bad = InvalidArgument.field(
        field, "is not a valid page token; pass next_page_token from the previous response"
    )
    if len(token) > 512:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        created_at = dt.datetime.fromisoformat(payload["t"])
        row_id = str(uuid.UUID(payload["i"]))
        token_scope = payload.get("s", "")
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise bad from None
    if created_at.tzinfo is None or not isinstance(token_scope, str):
        raise bad
    if token_scope != scope:
        raise InvalidArgument.field(
            field, "belongs to a different listing (filters must match the first request)"
        )
    return PageCursor(created_at, row_id, token_scope)


class Keyed(Protocol):
    """A row listed in (created_at, id) order."""

    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=Keyed)


def page_start(token: str, *, scope: str = "") -> tuple[dt.datetime, str] | None:
    """The (created_at, id) a page starts after, from a request's page_token ('' = first)."""
    if not token:
        return None
    cursor = decode_page_token(token, scope=scope)
    return cursor.created_at, cursor.id


def split_page(rows: list[R], size: int, *, scope: str = "") -> tuple[list[R], str]:
    """Rows fetched with LIMIT size + 1 -> (the page, next_page_token or '' on the last).

    The one extra row tells whether another page exists without a COUNT.
    """
    if len(rows) <= size:
        return rows, ""
    page = rows[:size]
    last = page[-1]
    return page, encode_page_token(PageCursor(last.created_at, last.id, scope))
