"""Calling any method of a running service by name, JSON in and JSON out.

The request and response types come from the server itself (gRPC server reflection, which
every service enables in libs/platform/server.py), so microctl needs no stubs for a
service to call it: a new one from tools/new_service included.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pool, json_format, message, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


class UnknownMethodError(Exception):
    """The server does not offer the method (or the name is malformed)."""


def call(
    channel: grpc.Channel,
    method: str,
    body: str,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float,
) -> message.Message:
    """`method` is `package.Service/Method`, e.g. `ledger.v1.LedgerService/CreateItem`."""
    service, _, name = method.strip("/").rpartition("/")
    if not service or not name:
        raise UnknownMethodError(f"{method!r}: expected package.Service/Method")
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    try:
        # protobuf's stubs leave the pool's lookups untyped.
        desc = pool.FindServiceByName(service).FindMethodByName(name)  # type: ignore[no-untyped-call]
    except KeyError:
        raise UnknownMethodError(f"the server offers no method {service}/{name}") from None
    if desc is None:
        raise UnknownMethodError(f"the server offers no method {service}/{name}")
    request_type = message_factory.GetMessageClass(desc.input_type)
    response_type = message_factory.GetMessageClass(desc.output_type)
    request = json_format.Parse(body or "{}", request_type())
    rpc = channel.unary_unary(
        f"/{service}/{name}",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    return rpc(request, metadata=tuple(metadata), timeout=timeout)
