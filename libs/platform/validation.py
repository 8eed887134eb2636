"""Input checks shared by handlers, and the one way to run several of them.

Each check raises InvalidArgument naming the field. A request with several fields runs its
checks inside `Violations`, so the caller hears about every bad field at once:

    with v.Violations() as bad:
        user_id = bad.check(v.uuid_str, request.user_id, "user_id")
        if request.amount <= 0:
            bad.add("amount", "must be positive")
    # Here every check passed, or InvalidArgument listing all violations was raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, Self, TypeVar, cast

from libs.platform import emails
from libs.platform.errors import FieldViolation, InvalidArgument

P = ParamSpec("P")
T = TypeVar("T")


class Violations:
    """Collects field violations; leaving the `with` block raises them as one InvalidArgument.

    A failed `check` returns None in place of its value, so values are only meant to be
    used after the block, where a failure can no longer reach them.
    """

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)`, keeping its InvalidArgument's violations if it raises."""
        try:
            return fn(*args, **kwargs)
        except InvalidArgument as exc:
            self.items.extend(exc.violations)
            # Stands in for the value until __exit__ raises (see the class docstring).
            return cast(T, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An exception already on its way out wins: it is not the caller's mistake.
        if exc_type is None and self.items:
            raise InvalidArgument(self.items)


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
