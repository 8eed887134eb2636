"""The public RPCs' HTTP mapping (google.api.http, AIP-127 and AIP-136), which the gateway
serves and its OpenAPI document describes; the RPCs only services call have none."""

from __future__ import annotations

import re

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor

from auth.v1 import auth_pb2
from payment.v1 import payment_pb2
from user.v1 import user_pb2

FILES = (auth_pb2, payment_pb2, user_pb2)

# (verb, path, body) per method; None: not served over HTTP.
EXPECTED = {
    "auth.v1.AuthService.Login": ("post", "/v1/auth:login", "*"),
    "auth.v1.AuthService.RefreshToken": ("post", "/v1/auth:refresh", "*"),
    "auth.v1.AuthService.Logout": ("post", "/v1/auth:logout", "*"),
    "auth.v1.AuthService.GetJwks": ("get", "/v1/auth/jwks", ""),
    "auth.v1.AuthService.RevokeUserSessions": None,
    "payment.v1.PaymentService.CreatePayment": ("post", "/v1/users/{user_id}/payments", "*"),
    "payment.v1.PaymentService.GetPayment": ("get", "/v1/payments/{payment_id}", ""),
    "payment.v1.PaymentService.ListPayments": ("get", "/v1/users/{user_id}/payments", ""),
    "user.v1.UserService.CreateUser": ("post", "/v1/users", "*"),
    "user.v1.UserService.GetUser": ("get", "/v1/users/{user_id}", ""),
    "user.v1.UserService.UpdateUser": ("patch", "/v1/users/{user_id}", "*"),
    # With a body: current_password must never travel in a URL.
    "user.v1.UserService.DeleteUser": ("delete", "/v1/users/{user_id}", "*"),
    "user.v1.UserService.ListUsers": None,
    "user.v1.UserService.BatchGetUsers": None,
    "user.v1.UserService.VerifyCredentials": None,
}


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


def test_every_method_is_mapped_as_documented() -> None:
    assert {name: mapping(m) for name, m in methods().items()} == EXPECTED


def test_path_variables_are_fields_of_the_request() -> None:
    for name, method in methods().items():
        rule = mapping(method)
        if rule is None:
            continue
        verb, path, body = rule
        fields = method.input_type.fields_by_name
        for variable in re.findall(r"{([^}=]+)}", path):
            assert variable in fields, f"{name}: {{{variable}}} is no field of the request"
            assert fields[variable].type == fields[variable].TYPE_STRING, name
        # GET carries no body (RFC 9110 9.3.1); every other verb takes the request as JSON.
        assert body == ("" if verb == "get" else "*"), name
