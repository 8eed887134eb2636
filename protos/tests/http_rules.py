"""The HTTP rules (google.api.http) of the services' methods, read from the generated
descriptors: what the gateway must serve and its OpenAPI document describe."""

from __future__ import annotations

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor

from auth.v1 import auth_pb2
from payment.v1 import payment_pb2
from user.v1 import user_pb2

FILES = (auth_pb2, payment_pb2, user_pb2)


def methods() -> dict[str, MethodDescriptor]:
    return {
        method.full_name: method
        for module in FILES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def mapping(method: MethodDescriptor) -> tuple[str, str, str] | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type] # untyped
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]
    verb = rule.WhichOneof("pattern")
    assert verb is not None, f"{method.full_name}: an HTTP rule without a verb"
    assert not rule.additional_bindings, f"{method.full_name}: one binding per method"
    return verb, getattr(rule, verb), rule.body
