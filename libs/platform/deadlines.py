"""The caller's deadline, carried in a context variable so stores and clients can obey it.

The server interceptor records the absolute deadline of the incoming call; downstream gRPC
calls and SQL statements take the time that is left (capped by their own default), so no
work outlives the call that asked for it.
"""

from __future__ import annotations

import contextvars
import time

import grpc

from libs.platform.errors import ServiceError

# Absolute time.monotonic() by which the current call must answer; None = no deadline.
deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "deadline", default=None
)

# Below this much time nothing useful can be done (a loopback round trip alone is ~1 ms).
MIN_BUDGET_S = 0.005


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def set_from_remaining(remaining: float | None) -> contextvars.Token[float | None]:
    deadline = None if remaining is None else time.monotonic() + remaining
    return deadline_var.set(deadline)


def remaining() -> float | None:
    """Seconds left for the current call, or None when the caller set no deadline."""
    deadline = deadline_var.get()
    return None if deadline is None else deadline - time.monotonic()


def expired() -> bool:
    left = remaining()
    return left is not None and left < MIN_BUDGET_S


def budget(default: float) -> float:
    """The time a dependent step may take: the default, cut to what the caller has left.

    Raises DeadlineExceeded when there is no time left, so nothing starts that cannot finish.
    """
    left = remaining()
    if left is None:
        return default
    if left < MIN_BUDGET_S:
        raise DeadlineExceeded("deadline exceeded before the call could be completed")
    return min(default, left)
