"""Who is calling: the principal the interceptor verified, and the checks handlers make."""

from __future__ import annotations

import contextvars
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from libs.platform.errors import PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "service"]
    subject: str  # user id, or service name (without the "service:" prefix)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    principal = principal_var.get()
    if principal is None:
        # Only reachable if a handler runs without the interceptor: fail closed.
        raise Unauthenticated("authentication required")
    return principal


def require_user_or_service(user_id: str) -> Principal:
    """Allow the user `user_id` itself, or any trusted service acting for a user."""
    principal = current_principal()
    if principal.is_service or principal.subject == user_id:
        return principal
    raise PermissionDenied("you may only access your own account and payments")


def require_service(allowed: Collection[str] | None = None) -> Principal:
    """Internal RPCs: user tokens are refused; `allowed` narrows which services may call."""
    principal = current_principal()
    if not principal.is_service:
        raise PermissionDenied("this method is for internal services only")
    if allowed is not None and principal.subject not in allowed:
        raise PermissionDenied(f"service {principal.subject!r} may not call this method")
    return principal
