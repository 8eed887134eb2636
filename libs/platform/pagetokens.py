"""AIP-158 page tokens for keyset pagination: made by the server, checked in full on return.

A token is the (created_at, id) of the last row of a page plus the filter ("scope") it was
made for, as unpadded URL-safe base64 of compact JSON. It comes back from the caller, so
it is untrusted input: every part is checked here, and anything a server did not make is
refused with INVALID_ARGUMENT before it reaches a query. In particular the timestamp must
be expressible in UTC, because the database driver converts it to UTC and a value like
`0001-01-01T00:00:00+23:59` would otherwise overflow there (an INTERNAL error).

The format is the one libs/platform/validation.py has always produced, so tokens handed
out before a service moves to this module stay valid.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from libs.platform.errors import InvalidArgument

FIELD = "page_token"
# A real token is about 150 characters (200 with a scope); more is not ours.
MAX_TOKEN_LENGTH = 512
INVALID = "is not a valid page token; pass next_page_token from the previous response unchanged"
OTHER_LISTING = (
    "belongs to a different listing; repeat the filters of the request that returned it, "
    "or leave page_token empty to start from the first page"
)
_KEYS = frozenset({"t", "i", "s"})


@dataclass(frozen=True)
class PageCursor:
    """Keyset position: the last row of the previous page, plus the filter it belongs to."""

    created_at: dt.datetime
    id: str
    scope: str = ""


def encode(cursor: PageCursor) -> str:
    payload = {"t": cursor.created_at.isoformat(), "i": cursor.id}
    if cursor.scope:
        payload["s"] = cursor.scope
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _payload(token: str) -> dict[str, Any]:
    """The token's JSON object; ValueError for anything else (bad base64, UTF-8 or JSON)."""
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise ValueError("not a token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise ValueError("not a token") from None
    if not isinstance(payload, dict) or not {"t", "i"} <= payload.keys() <= _KEYS:
        raise ValueError("not a token")
    return payload


def _timestamp(value: object) -> dt.datetime:
    """An aware datetime that converts to UTC, as the driver will; else ValueError/TypeError."""
    if not isinstance(value, str):
        raise TypeError("not a timestamp")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("no time zone")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        # A real row's time is never near year 1 or 9999; only a crafted offset lands here.
        raise ValueError("out of range") from None


def decode(token: str, *, scope: str = "", field: str = FIELD) -> PageCursor:
    """Parse and check a token from encode(); a token made for another scope is refused."""
    try:
        payload = _payload(token)
        created_at = _timestamp(payload["t"])
        row_id = payload["i"]
        if not isinstance(row_id, str):
            raise TypeError("not an id")
        row_id = str(uuid.UUID(row_id))
        token_scope = payload.get("s", "")
        if not isinstance(token_scope, str):
            raise TypeError("not a scope")
    except (ValueError, TypeError):
        raise InvalidArgument.field(field, INVALID) from None
    if token_scope != scope:
        raise InvalidArgument.field(field, OTHER_LISTING)
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
    cursor = decode(token, scope=scope)
    return cursor.created_at, cursor.id


def split_page(rows: list[R], size: int, *, scope: str = "") -> tuple[list[R], str]:
    """Rows fetched with LIMIT size + 1 -> (the page, next_page_token or '' on the last).

    The one extra row tells whether another page exists without a COUNT.
    """
    if len(rows) <= size:
        return rows, ""
    page = rows[:size]
    last = page[-1]
    return page, encode(PageCursor(last.created_at, last.id, scope))
