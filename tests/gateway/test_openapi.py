"""The gateway's OpenAPI document (gateway/, //:openapi): a valid Swagger 2.0 document with
one operation per HTTP rule of the protos and none for the RPCs only services call, bearer
auth where a call needs a user, and errors as google.rpc.Status."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from openapi_spec_validator.validation.validators import OpenAPIV2SpecValidator

from protos.tests.http_rules import mapping, methods

# Calls made before a caller has a token, or to renew or end one.
ANONYMOUS = {
    "auth.v1.AuthService.Login",
    "auth.v1.AuthService.RefreshToken",
    "auth.v1.AuthService.Logout",
    "auth.v1.AuthService.GetJwks",
    "user.v1.UserService.CreateUser",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    path = Path(os.environ.get("MICRO_OPENAPI", ""))
    if not path.is_file():
        pytest.fail(
            f"MICRO_OPENAPI={str(path)!r} is not the gateway module's OpenAPI document; run "
            "this test through tools/gateway_test.sh, which builds it there and passes its path",
            pytrace=False,
        )
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def comparable(path: str) -> str:
    # Path variables are written with the fields' JSON names ({userId}); the rules use the
    # proto names ({user_id}): compare them without underscores or case.
    return re.sub(r"{([^}]+)}", lambda m: "{" + m[1].replace("_", "").lower() + "}", path)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (verb, comparable(path)): op
        for path, item in document["paths"].items()
        for verb, op in item.items()
    }


def rules() -> dict[str, tuple[str, str]]:
    found = {}
    for name, method in methods().items():
        rule = mapping(method)
        if rule is not None:
            verb, path, _ = rule
            found[name] = (verb, comparable(path))
    return found


def test_the_document_is_valid_swagger_2(document: dict[str, Any]) -> None:
    assert document["swagger"] == "2.0"
    validate(document, cls=OpenAPIV2SpecValidator)


def test_the_validator_refuses_a_broken_document(document: dict[str, Any]) -> None:
    # Guards the guard: an operation without its responses is not Swagger 2.0.
    broken = json.loads(json.dumps(document))
    del next(iter(next(iter(broken["paths"].values())).values()))["responses"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV2SpecValidator)


def test_one_operation_per_http_rule(document: dict[str, Any]) -> None:
    expected = rules()
    ops = operations(document)
    assert sorted(ops) == sorted(expected.values())
    for name, key in expected.items():
        service, method = name.rsplit(".", 1)
        assert ops[key]["operationId"] == f"{service.rsplit('.', 1)[1]}_{method}", name


def test_a_token_is_asked_for_where_a_call_needs_a_user(document: dict[str, Any]) -> None:
    scheme = document["securityDefinitions"]["bearer"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert document["security"] == [{"bearer": []}]
    ops = operations(document)
    for name, key in rules().items():
        # An operation without its own `security` takes the document's: the bearer token.
        assert (ops[key].get("security") == []) == (name in ANONYMOUS), name


def test_errors_are_google_rpc_status(document: dict[str, Any]) -> None:
    status = document["definitions"]["google.rpc.Status"]["properties"]
    assert {"code", "message", "details"} <= set(status)
    for (verb, path), op in operations(document).items():
        assert op["responses"]["default"]["schema"] == {
            "$ref": "#/definitions/google.rpc.Status"
        }, (verb, path)


def test_internal_rpcs_have_no_operation(document: dict[str, Any]) -> None:
    served = {op["operationId"] for op in operations(document).values()}
    for name, method in methods().items():
        if mapping(method) is None:
            service, rpc = name.rsplit(".", 1)
            assert f"{service.rsplit('.', 1)[1]}_{rpc}" not in served, name
