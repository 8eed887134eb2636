"""Type names for grpc.aio's handlers, contexts and interceptors, and the one way our client
interceptors derive a call's details.

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
ClientContinuation: TypeAlias = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]


def unary_behavior(handler: Handler) -> UnaryBehavior | None:
    """The handler's unary-unary coroutine function, if it is one."""
    # The stubs type method handlers for the threaded server; under grpc.aio the same
    # attribute holds a coroutine function taking an aio context.
    return cast("UnaryBehavior | None", handler.unary_unary)


def method_name(details: grpc.aio.ClientCallDetails) -> str:
    """The full method name (grpc.aio may hand it over as bytes)."""
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def with_metadata(
    details: grpc.aio.ClientCallDetails, metadata: grpc.aio.Metadata
) -> grpc.aio.ClientCallDetails:
    """The same call with `metadata` in place of its own."""
    return _rebuilt(details, metadata=metadata, timeout=details.timeout)


def with_timeout(details: grpc.aio.ClientCallDetails, timeout: float) -> grpc.aio.ClientCallDetails:
    """The same call with `timeout` (seconds) in place of its own."""
    return _rebuilt(details, metadata=details.metadata, timeout=timeout)


def _rebuilt(
    details: grpc.aio.ClientCallDetails,
    *,
    metadata: grpc.aio.Metadata | None,
    timeout: float | None,
) -> grpc.aio.ClientCallDetails:
    # The runtime class is a namedtuple (its _replace would do), the stubs' is not.
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )
