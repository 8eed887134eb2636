"""OpenTelemetry tracing for grpc.aio, written on the OTel API: W3C traceparent in metadata.

Interceptors always run; without a configured TracerProvider the API is a no-op. The runner
calls setup_tracing(), which installs an OTLP exporter only when
OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from libs.platform.rpc_types import (
    ClientContinuation,
    Context,
    Continuation,
    Handler,
    method_name,
    unary_behavior,
    with_metadata,
)

log = logging.getLogger(__name__)

_TRACER = "micro.grpc"


def setup_tracing(service: str) -> Callable[[], None]:
    """Export spans over OTLP/gRPC if configured; returns a flush-and-close function."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not endpoint:
        return lambda: None
    # Imported lazily: the SDK and exporter are only needed when tracing is switched on.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    log.info("tracing enabled", extra={"otlp_endpoint": endpoint})
    return provider.shutdown


def enabled() -> bool:
    """True once a real TracerProvider is installed (setup_tracing, or a test's SDK).

    Without one every span is a no-op, so the interceptors step aside entirely instead of
    parsing traceparent, building attributes and wrapping each call for nothing.
    """
    return not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _rpc_attributes(method: str) -> dict[str, str]:
    service, name = _split(method)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _set_status(span: trace.Span, code: grpc.StatusCode | None) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))


class ServerTracingInterceptor(grpc.aio.ServerInterceptor):
    """One SERVER span per unary call, child of the caller's traceparent if it sent one."""

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        inner = unary_behavior(handler) if handler is not None else None
        if handler is None or inner is None or not enabled():
            return handler
        method = handler_call_details.method
        carrier = {
            k: v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)
        }

        async def wrapped(request: Any, context: Context) -> Any:
            parent = propagate.extract(carrier)
            tracer = trace.get_tracer(_TRACER)
            with tracer.start_as_current_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=_rpc_attributes(method),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await inner(request, context)
                except BaseException:
                    _set_status(span, context.code() or grpc.StatusCode.UNKNOWN)
                    raise
                _set_status(span, context.code())
                return response

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ClientTracingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """One CLIENT span per outgoing unary call; injects traceparent into its metadata."""

    async def intercept_unary_unary(
        self,
        continuation: ClientContinuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if not enabled():
            return await continuation(client_call_details, request)
        method = method_name(client_call_details)
        tracer = trace.get_tracer(_TRACER)
        with tracer.start_as_current_span(
            method, kind=SpanKind.CLIENT, attributes=_rpc_attributes(method)
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
            for key, value in carrier.items():
                metadata.add(key, value)
            call = await continuation(with_metadata(client_call_details, metadata), request)
            # Waiting for the status keeps the span open exactly as long as the call.
            _set_status(span, await call.code())
            return call
