"""Per-address limits for the services every server carries: health checks and reflection.

Overload shedding never refuses these (kubelets and load balancers must keep hearing the
truth), and they need no credentials, so before this a flood of them from one address
raised every user's p99 about tenfold (the third security round). A token bucket per
caller address (IPv4 address or IPv6 /64, admission.client_address) admits what a prober or
a person with grpcurl sends, many times over, and refuses the rest at once with
RESOURCE_EXHAUSTED and a RetryInfo delay, before the service runs:

* a unary Check, and the start of a Watch stream, take one token each;
* reflection is one bidirectional stream in which every request message is a lookup, so
  each message takes one, and the stream ends at the first over the limit.

One limiter per process, like the other in-memory limits (admission.RateLimiter): with N
worker processes and R replicas an address gets up to N x R times the rate.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from libs.platform.admission import RateLimiter, client_address, retry_status
from libs.platform.rpc_types import Context, Continuation, Handler

LIMITED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
REFUSAL = "too many health or reflection calls from this address"


@dataclass(frozen=True)
class BuiltinLimits:
    """Calls (or reflection messages) per second per address, and the burst allowed at once.
    `per_second` 0 turns the limit off."""

    per_second: float = 20.0
    burst: float = 40.0


class BuiltinLimitInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limits: BuiltinLimits) -> None:
        self._limiter = RateLimiter(limits.burst, limits.per_second)

    def _admit(self, context: Context) -> bool:
        """Take a token for the caller; False (with the status set) when there is none."""
        retry_after = self._limiter.take(client_address(context.peer()))
        if retry_after is None:
            return True
        status = retry_status(REFUSAL, retry_after, whole_seconds=False)
        context.set_code(status.code)
        context.set_details(status.details)
        context.set_trailing_metadata(status.trailing_metadata)
        return False

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(LIMITED_PREFIXES):
            return handler
        # The stubs type method handlers for the threaded server; under grpc.aio each of
        # these attributes holds a coroutine function (or async generator function).
        behaviors: Any = handler
        if behaviors.unary_unary is not None:
            unary = behaviors.unary_unary

            async def check(request: Any, context: Context) -> Any:
                return await unary(request, context) if self._admit(context) else None

            return grpc.unary_unary_rpc_method_handler(
                check, handler.request_deserializer, handler.response_serializer
            )
        if behaviors.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(behaviors.unary_stream, admit_each=False),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if behaviors.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(behaviors.stream_stream, admit_each=True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    def _streaming(self, behavior: Any, *, admit_each: bool) -> Any:
        """The same streaming behaviour, admitted once at the start or once per request
        message. grpc.aio serves an async generator's yields or a coroutine's
        context.write() calls (grpcio-health-checking's Watch does the latter), and a
        handler may not mix the two, so the wrapper takes the inner one's form."""

        def limited(request: Any, context: Context) -> Any:
            if not admit_each:
                return request
            requests: AsyncIterator[Any] = request

            async def admitted() -> AsyncIterator[Any]:
                async for message in requests:
                    if not self._admit(context):
                        return  # the stream's end; the status set stays the answer
                    yield message

            return admitted()

        if inspect.isasyncgenfunction(behavior):

            async def generate(request: Any, context: Context) -> AsyncIterator[Any]:
                if admit_each or self._admit(context):
                    async for response in behavior(limited(request, context), context):
                        yield response

            return generate

        async def write(request: Any, context: Context) -> None:
            if admit_each or self._admit(context):
                await behavior(limited(request, context), context)

        return write
