"""Type names for grpc.aio's handlers, contexts and interceptors.

Spelled as strings: grpc's stubs (types-grpcio) make these classes generic, its runtime
classes are not all subscriptable, and only the type checker reads the names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["Handler | None"]]
UnaryBehavior: TypeAlias = Callable[[Any, Context], Awaitable[Any]]


def unary_behavior(handler: Handler) -> UnaryBehavior | None:
    """The handler's unary-unary coroutine function, if it is one."""
    # The stubs type method handlers for the threaded server; under grpc.aio the same
    # attribute holds a coroutine function taking an aio context.
    return cast("UnaryBehavior | None", handler.unary_unary)
