"""The gateway (gateway/, //:gateway, a Go program of its own module) in front of the three
Python services, in-process on loopback with their own PostgreSQL databases: the seed's user
journey over HTTP/JSON, errors as HTTP statuses with a google.rpc.Status body, and what the
gateway itself serves (/openapi.json, health, request ids, body limit, CORS)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libs.platform.testing.net import free_port
from libs.platform.testing.programs import module_program
from tests.e2e.system import PASSWORD, System

GATEWAY = module_program("MICRO_GATEWAY", "gateway", "tools/gateway_test.sh")
OPENAPI = os.environ.get("MICRO_OPENAPI", "")
SWAGGER_UI = os.environ.get("MICRO_SWAGGER_UI", "")
# Long enough to reach every operation more than once; bounded, so CI stays short.
FUZZ_SECONDS = 30


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _send(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - our loopback URL
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our loopback URL
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


@dataclass
class Gateway:
    base: str

    async def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        token: str = "",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        body = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
        # Off the event loop, which serves the in-process services.
        return await asyncio.to_thread(_send, method, self.base + path, body, sent)


@pytest.fixture
async def gateway(system: System, tmp_path: Path) -> AsyncIterator[Gateway]:
    port = free_port()
    # A file, not a pipe: the gateway logs a line per request, and a pipe nobody reads while
    # the test runs would fill and stall it.
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            GATEWAY,
            f"--listen=127.0.0.1:{port}",
            f"--usersvc={system.users_addr}",
            f"--paymentsvc=127.0.0.1:{system.payments_port}",
            f"--authsvc=127.0.0.1:{system.auth_settings.grpc_port}",
            f"--openapi={OPENAPI}",
            f"--swagger-ui={SWAGGER_UI}",
            stderr=log,
        )
    gw = Gateway(f"http://127.0.0.1:{port}")
    try:
        for _ in range(200):
            if proc.returncode is not None:
                pytest.fail(f"the gateway exited: {log_path.read_text()}")
            try:
                if (await gw.call("GET", "/healthz")).status == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the gateway did not answer /healthz within 10 s")
        yield gw
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0, "SIGTERM: a clean shutdown"


async def sign_up(gw: Gateway, email: str) -> tuple[str, str]:
    created = await gw.call("POST", "/v1/users", {"email": email, "password": PASSWORD})
    assert created.status == 200, created.body
    login = await gw.call("POST", "/v1/auth:login", {"email": email, "password": PASSWORD})
    assert login.status == 200, login.body
    return created.json()["userId"], login.json()["token"]


async def test_the_seed_journey_over_http(gateway: Gateway) -> None:
    user_id, token = await sign_up(gateway, "ada@x.io")
    got = await gateway.call("GET", f"/v1/users/{user_id}", token=token)
    assert (got.status, got.json()["email"]) == (200, "ada@x.io")

    payment = {"amount": 1250, "currency": "EUR", "idempotencyKey": "order-1"}
    first = await gateway.call("POST", f"/v1/users/{user_id}/payments", payment, token=token)
    again = await gateway.call("POST", f"/v1/users/{user_id}/payments", payment, token=token)
    assert (first.status, again.status) == (200, 200), (first.body, again.body)
    assert first.json()["paymentId"] == again.json()["paymentId"]

    listed = await gateway.call("GET", f"/v1/users/{user_id}/payments?pageSize=10", token=token)
    assert listed.status == 200, listed.body
    assert [p["paymentId"] for p in listed.json()["payments"]] == [first.json()["paymentId"]]
    one = await gateway.call("GET", f"/v1/payments/{first.json()['paymentId']}", token=token)
    assert (one.status, one.json()["payment"]["amount"]) == (200, "1250")

    renamed = await gateway.call(
        "PATCH", f"/v1/users/{user_id}", {"displayName": "Ada"}, token=token
    )
    assert (renamed.status, renamed.json()["user"]["displayName"]) == (200, "Ada")
    deleted = await gateway.call(
        "DELETE", f"/v1/users/{user_id}", {"currentPassword": PASSWORD}, token=token
    )
    assert deleted.status == 200, deleted.body


async def test_errors_are_http_statuses_with_a_status_body(gateway: Gateway) -> None:
    user_id, token = await sign_up(gateway, "bob@x.io")
    cases = [
        (await gateway.call("POST", "/v1/users", {"email": "nope", "password": PASSWORD}), 400, 3),
        (await gateway.call("GET", f"/v1/users/{user_id}"), 401, 16),
        (
            await gateway.call("POST", "/v1/users", {"email": "bob@x.io", "password": PASSWORD}),
            409,
            6,
        ),
        (
            await gateway.call(
                "GET", "/v1/payments/00000000-0000-0000-0000-000000000000", token=token
            ),
            404,
            5,
        ),
    ]
    for answer, status, code in cases:
        body = answer.json()
        assert (answer.status, body["code"]) == (status, code), answer.body
        assert body["message"] and "Traceback" not in body["message"]
    bad = cases[0][0].json()
    assert any(d["@type"].endswith("google.rpc.BadRequest") for d in bad["details"]), bad


async def test_an_overload_or_throttle_answer_says_when_to_retry(gateway: Gateway) -> None:
    await sign_up(gateway, "eve@x.io")
    for _ in range(40):
        answer = await gateway.call(
            "POST", "/v1/auth:login", {"email": "eve@x.io", "password": "wrong guess"}
        )
        if answer.status == 429:
            break
        assert answer.status == 401, answer.body
    assert answer.status == 429, "repeated failures are throttled"
    assert answer.json()["code"] == 8
    assert int(answer.headers["Retry-After"]) >= 1


async def test_what_the_gateway_serves_itself(gateway: Gateway) -> None:
    document = await gateway.call("GET", "/openapi.json")
    assert document.status == 200
    assert document.json() == json.loads(await asyncio.to_thread(Path(OPENAPI).read_text))
    assert (await gateway.call("GET", "/readyz")).status == 200

    tagged = await gateway.call("GET", "/v1/auth/jwks", headers={"X-Request-Id": "trace-me-1"})
    assert (tagged.status, tagged.headers["X-Request-Id"]) == (200, "trace-me-1")
    minted = await gateway.call("GET", "/v1/auth/jwks", headers={"X-Request-Id": "bad\u00e9id"})
    assert minted.headers["X-Request-Id"] != "bad\u00e9id", "a caller's odd id is replaced"

    huge = await gateway.call("POST", "/v1/users", raw=b"{" + b" " * 100_000 + b"}")
    assert huge.status == 413
    # No origin is allowed unless configured: a browser elsewhere gets no CORS grant.
    cors = await gateway.call("GET", "/v1/auth/jwks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in cors.headers


async def test_every_operation_holds_up_under_generated_requests(gateway: Gateway) -> None:
    """Schemathesis generates requests for every operation of the OpenAPI document, valid and
    not, for a bounded time: no answer may be a server error, and every answer must match
    what the document says of its status, content type and body."""
    _, token = await sign_up(gateway, "fuzz@x.io")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        OPENAPI,
        f"--url={gateway.base}",
        "--checks=not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--phases=examples,coverage,fuzzing",
        f"--max-time={FUZZ_SECONDS}",
        "--workers=1",
        "--seed=7",
        f"--header=Authorization: Bearer {token}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=FUZZ_SECONDS + 120)
    report = out.decode()
    assert proc.returncode == 0, report


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_the_swagger_ui_page_shows_every_operation(gateway: Gateway, tmp_path: Path) -> None:
    """Swagger UI at /docs/, rendered by a headless Chromium: it loads the gateway's document
    and lists one operation per HTTP rule."""
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian's chromium package; the offline root has it)")
    page = await gateway.call("GET", "/docs/")
    assert page.status == 200 and b"swagger-ui" in page.body
    with (tmp_path / "chromium.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # as root in a test's sandbox; the page is our own
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            # Lets the page's scripts fetch /openapi.json and render before the DOM is dumped.
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{gateway.base}/docs/",
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        dom, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    rendered = {
        (verb.lower(), path)
        for verb, path in re.findall(
            r'opblock-summary-method">(\w+)</span>.*?data-path="([^"]+)"', dom.decode(), re.DOTALL
        )
    }
    document = json.loads(await asyncio.to_thread(Path(OPENAPI).read_text))
    documented = {(verb, path) for path, item in document["paths"].items() for verb in item}
    assert rendered == documented, (tmp_path / "chromium.log").read_text()[-2000:]
