"""Calling other services: channels plus a deadline and dependency-failure mapping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from libs.platform import deadlines
from libs.platform.errors import (
    DEPENDENCY_DEADLINE,
    DEPENDENCY_OVERLOADED,
    DEPENDENCY_UNAVAILABLE,
    ServiceError,
    Unavailable,
)
from libs.platform.logs import request_id_var
from libs.platform.observability import REQUEST_ID_HEADER
from libs.platform.tls import DEFAULT_MAX_MESSAGE_BYTES, message_size_options
from libs.platform.tracing import ClientTracingInterceptor

Resp = TypeVar("Resp")

# Failures that say "the dependency can't answer now" rather than "your request is wrong".
_UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)


def open_channel(
    address: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.aio.Channel:
    # gRPC's default reconnect backoff grows to 120 s; within a cluster a restarted peer
    # should be found again within seconds.
    options = (*message_size_options(max_message_bytes), ("grpc.max_reconnect_backoff_ms", 2000))
    interceptors = [ClientTracingInterceptor(), *interceptors]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


async def call(
    method: Callable[..., Awaitable[Resp]],
    request: Any,
    *,
    dependency: str,
    deadline: float,
) -> Resp:
    """Call a unary method, forwarding the request id and the caller's deadline.

    The timeout is `deadline` (seconds) cut to what the incoming call has left. Running out
    of the caller's time gives DeadlineExceeded; UNAVAILABLE / DEADLINE_EXCEEDED otherwise
    become platform Unavailable; any other status is re-raised as grpc.aio.AioRpcError for
    the caller to interpret.
    """
    timeout = deadlines.budget(deadline)
    metadata = []
    rid = request_id_var.get()
    if rid:
        metadata.append((REQUEST_ID_HEADER, rid))
    try:
        return await method(request, timeout=timeout, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _UNAVAILABLE_CODES:
            raise dependency_failed(dependency, exc.code()) from exc
        raise


def dependency_failed(dependency: str, code: grpc.StatusCode) -> ServiceError:
    """The error for a caller when `dependency` could not answer with `code`.

    DEADLINE_EXCEEDED stays that when the caller's own deadline ran out; otherwise the
    dependency was slow or down, which is UNAVAILABLE (retryable) for the caller. The
    message names neither the dependency nor its status (which service calls which is the
    deployment's business, not an anonymous caller's); the log line's detail does.
    """
    detail = f"{dependency}: {code.name}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadlines.expired():
        return deadlines.DeadlineExceeded(DEPENDENCY_DEADLINE, detail=detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Shed, and not retried (libs/platform/overload/retries.py): the retry budget was
        # spent or the deadline too near. Retryable for the caller, like any outage.
        return Unavailable(DEPENDENCY_OVERLOADED, detail=detail)
    return Unavailable(DEPENDENCY_UNAVAILABLE, detail=detail)
    return Unavailable(f"{dependency} is unavailable ({code.name}); retry later")
