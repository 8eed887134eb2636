"""Requests whose bytes do not parse: INVALID_ARGUMENT naming the field, never UNKNOWN.

grpc.aio deserializes a request before any handler code runs, and an exception there
(protobuf's DecodeError for, say, invalid UTF-8 in a string field) becomes UNKNOWN with
Python's exception text: a caller's mistake reported as a server fault, with internals.
RequestDecodingInterceptor wraps every method's deserializer so that nothing raises inside
grpc: a unary request that does not parse becomes an `Undecodable` value, a streamed one
raises `Undecodable` where the handler reads it, and either way the wrapped handler ends
the call with INVALID_ARGUMENT and a google.rpc.BadRequest naming the field when one is to
blame. It is the innermost interceptor, so authentication still comes first, and the
observability interceptor logs and counts the call with its INVALID_ARGUMENT code.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from grpc_status import rpc_status

from libs.platform.errors import InvalidArgument, ServiceError
from libs.platform.observability import status_of
from libs.platform.rpc_types import Context, Continuation, Handler

# Nested messages deeper than this are not searched for the bad field (protobuf itself
# refuses nesting beyond 100); the answer then names no field.
MAX_SEARCH_DEPTH = 32


class MalformedRequest(ServiceError):
    """Bytes that are not protobuf at all: no one field is to blame."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class Undecodable(Exception):
    """Request bytes that do not parse as the method's request message."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.error = error


class _Truncated(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise _Truncated


def _bad_utf8_field(descriptor: Descriptor, data: bytes, depth: int = 0) -> str | None:
    """The path of the first string field (nested ones too) whose bytes are not UTF-8."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            chunk, pos = data[pos : pos + size], pos + size
            field = descriptor.fields_by_number.get(number)
            if field is None or pos > len(data):
                continue
            if field.type == FieldDescriptor.TYPE_STRING:
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError:
                    return str(field.name)
            elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < MAX_SEARCH_DEPTH:
                inner = _bad_utf8_field(field.message_type, chunk, depth + 1)
                if inner is not None:
                    return f"{field.name}.{inner}"
        else:
            raise _Truncated  # groups (deprecated) or not a wire type at all
    return None


def describe(descriptor: Descriptor | None, data: bytes) -> ServiceError:
    """The caller's error for `data` that did not parse as `descriptor`'s message."""
    if descriptor is not None:
        try:
            field = _bad_utf8_field(descriptor, data)
        except _Truncated:
            field = None
        if field is not None:
            return InvalidArgument.field(field, "must be valid UTF-8 text")
    name = descriptor.full_name if descriptor is not None else "the method's request message"
    return MalformedRequest(
        f"the request does not parse as {name}; encode it from the published .proto "
        "definitions (server reflection lists them)"
    )


def _descriptor(deserializer: Callable[[bytes], Any]) -> Descriptor | None:
    # Generated code passes `<Message>.FromString`, a classmethod bound to the class.
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, Descriptor) else None


def _tolerant(deserializer: Callable[[bytes], Any], *, streaming: bool) -> Callable[[bytes], Any]:
    descriptor = _descriptor(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            failure = Undecodable(describe(descriptor, data))
        if streaming:
            raise failure  # raised where the handler reads it; _guarded's wrapper catches it
        return failure  # a unary request is decoded before any handler runs: pass it on

    return deserialize


async def _refuse(context: Context, failure: Undecodable) -> None:
    await context.abort_with_status(rpc_status.to_status(status_of(failure.error)))


Behavior = Callable[[Any, Context], Any]


def _guarded(inner: Behavior) -> Behavior | None:
    """`inner` refusing undecodable requests; None for a behaviour of a kind not wrapped."""
    if inspect.isasyncgenfunction(inner):

        async def responses(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await _refuse(context, request)
            try:
                async for response in inner(request, context):
                    yield response
            except Undecodable as failure:
                await _refuse(context, failure)

        return responses
    if inspect.iscoroutinefunction(inner):

        async def response(request: Any, context: Context) -> Any:
            if isinstance(request, Undecodable):
                await _refuse(context, request)
            try:
                return await inner(request, context)
            except Undecodable as failure:
                await _refuse(context, failure)

        return response
    return None  # synchronous handlers: none in this code base


_HANDLER_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def guard(handler: Handler) -> Handler:
    """The same method, answering INVALID_ARGUMENT to request bytes that do not parse."""
    if handler.request_deserializer is None:
        return handler  # the method takes raw bytes: nothing can fail to parse
    attribute, factory = _HANDLER_FACTORIES[
        (bool(handler.request_streaming), bool(handler.response_streaming))
    ]
    behavior = _guarded(getattr(handler, attribute))
    if behavior is None:
        return handler
    return factory(
        behavior,
        request_deserializer=_tolerant(
            handler.request_deserializer, streaming=bool(handler.request_streaming)
        ),
        response_serializer=handler.response_serializer,
    )


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Innermost interceptor: every method refuses undecodable requests as the caller's error.

    The outer interceptors pass `request_deserializer` on unchanged, so the one wrapped here
    is the one grpc calls.
    """

    def __init__(self) -> None:
        # Registered handlers are created once, so each method is wrapped once.
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, guard(handler))
            self._guarded[method] = cached
        return cached[1]


__all__ = ["MalformedRequest", "RequestDecodingInterceptor", "Undecodable", "describe", "guard"]
