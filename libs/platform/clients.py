"""Calling other services: channels plus a deadline and dependency-failure mapping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from libs.platform.errors import Unavailable
from libs.platform.interceptors import REQUEST_ID_HEADER
from libs.platform.logs import request_id_var

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


def open_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address)


async def call(
    method: Callable[..., Awaitable[Resp]],
    request: Any,
    *,
    dependency: str,
    deadline: float,
) -> Resp:
    """Call a unary method with a deadline (seconds), forwarding the request id.

    UNAVAILABLE / DEADLINE_EXCEEDED from the dependency become platform Unavailable; any
    other status is re-raised as grpc.aio.AioRpcError for the caller to interpret.
    """
    metadata = []
    rid = request_id_var.get()
    if rid:
        metadata.append((REQUEST_ID_HEADER, rid))
    try:
        return await method(request, timeout=deadline, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _UNAVAILABLE_CODES:
            raise Unavailable(
                f"{dependency} is unavailable ({exc.code().name}); retry later"
            ) from exc
        raise
