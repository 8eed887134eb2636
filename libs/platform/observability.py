"""The observability interceptor: request ids, a log line and metrics per call, error -> status."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from libs.platform import deadlines
from libs.platform.db import CONNECTION_ERRORS
from libs.platform.errors import DEPENDENCY_UNAVAILABLE, InvalidArgument, ServiceError
from libs.platform.logs import request_id_var
from libs.platform.metrics import Metrics
from libs.platform.rpc_types import Context, Continuation, Handler, unary_behavior

log = logging.getLogger("rpc")

REQUEST_ID_HEADER = "x-request-id"


# asyncpg raises this when a connection's protocol is not idle: in practice a server going
# down sent FATAL to a pooled, idle connection just before its socket closed, and the
# connection was handed out in between. The statement was never sent; the pool drops the
# connection (db.acquire's release runs the full reset, which fails). Retrying is right.
_BROKEN_CONNECTION = asyncpg.InternalClientError


def status_of(exc: ServiceError) -> status_pb2.Status:
    """The status a platform error answers with: its code and message, and for
    InvalidArgument a google.rpc.BadRequest naming each field."""
    status = status_pb2.Status(code=exc.code.value[0], message=exc.message)
    if isinstance(exc, InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    return status


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, status_pb2.Status]:
    if isinstance(exc, ServiceError):
        return exc.code, status_of(exc)
    if deadlines.expired() and isinstance(exc, (*CONNECTION_ERRORS, asyncpg.QueryCanceledError)):
        # A statement or dependency cut short by the caller's own deadline.
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        message = "deadline exceeded"
    elif isinstance(exc, (*CONNECTION_ERRORS, asyncpg.QueryCanceledError, _BROKEN_CONNECTION)):
        code = grpc.StatusCode.UNAVAILABLE
        message = DEPENDENCY_UNAVAILABLE
    else:
        code = grpc.StatusCode.INTERNAL
        message = "internal error"
    return code, status_pb2.Status(code=code.value[0], message=message)


def _request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        inner = unary_behavior(handler) if handler is not None else None
        if handler is None or inner is None:
            # Health watch and reflection are streaming; they need no mapping.
            return handler
        method = handler_call_details.method

        async def wrapped(request: Any, context: Context) -> Any:
            rid = _request_id(handler_call_details)
            token = request_id_var.set(rid)
            deadline_token = deadlines.set_from_remaining(context.time_remaining())
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            detail: str | None = None
            try:
                # Nothing useful fits in an (almost) spent deadline: answer at once.
                deadlines.budget(float("inf"))
                return await inner(request, context)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                # gRPC cancels the handler when the caller gives up or its deadline passes.
                code = (
                    grpc.StatusCode.DEADLINE_EXCEEDED
                    if deadlines.expired()
                    else grpc.StatusCode.CANCELLED
                )
                raise
            except Exception as exc:
                code, status = _status_for(exc)
                detail = exc.detail if isinstance(exc, ServiceError) else None
                if code == grpc.StatusCode.INTERNAL:
                    log.exception("unhandled error in %s", method)
                elif code == grpc.StatusCode.UNAVAILABLE and not isinstance(exc, ServiceError):
                    log.warning("dependency unavailable in %s: %r", method, exc)
                await context.abort_with_status(rpc_status.to_status(status))
                raise AssertionError("abort_with_status returns only by raising") from None
            finally:
                code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                elapsed = time.perf_counter() - start
                if self._metrics is not None:
                    self._metrics.observe(method, code_name, elapsed)
                fields: dict[str, object] = {
                    "method": method,
                    "code": code_name,
                    "request_id": rid,
                    "duration_ms": round(elapsed * 1000, 2),
                }
                if detail is not None:
                    fields["detail"] = detail  # what the caller's message leaves out
                log.info("rpc", extra=fields)
                deadlines.deadline_var.reset(deadline_token)
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


__all__ = ["REQUEST_ID_HEADER", "ObservabilityInterceptor", "status_of"]
