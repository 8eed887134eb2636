"""Input checks shared by handlers. Each raises InvalidArgument naming the field."""

from __future__ import annotations

import uuid

from libs.platform import emails
from libs.platform.errors import InvalidArgument

MAX_EMAIL_LENGTH = emails.MAX_LENGTH


def email(value: str, field: str = "email") -> str:
    """The trimmed address; the policy and the canonical form live in emails.py."""
    return emails.parse(value, field).address


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
