"""The public RPCs' HTTP mapping (google.api.http, AIP-127 and AIP-136), which the gateway
serves and its OpenAPI document describes; the RPCs only services call have none."""

from __future__ import annotations

import re

from protos.tests.http_rules import mapping, methods

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
