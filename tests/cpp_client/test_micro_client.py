"""The C++ client (clients/cpp, a module of its own) against the three Python services,
in-process on loopback with their own PostgreSQL databases: its exit status and output, and
what the services recorded, read back through the Python stubs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import jwt
import pytest

from auth.v1 import auth_pb2
from libs.platform.testing.net import free_port
from libs.platform.testing.programs import cpp_program
from libs.platform.testing.security import bearer
from payment.v1 import payment_pb2
from tests.e2e.system import PASSWORD, System
from user.v1 import user_pb2

CLIENT = cpp_program("MICRO_CLIENT")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def run_client(*args: str) -> Run:
    # A subprocess the event loop waits on, so the in-process services keep serving it.
    proc = await asyncio.create_subprocess_exec(
        CLIENT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def addresses(system: System, *, paymentsvc: str | None = None) -> list[str]:
    return [
        f"--usersvc={system.users_addr}",
        f"--authsvc=127.0.0.1:{system.auth_settings.grpc_port}",
        f"--paymentsvc={paymentsvc or f'127.0.0.1:{system.payments_port}'}",
    ]


async def payments_of(system: System, email: str) -> list[payment_pb2.Payment]:
    """The user's payments as the Python stubs see them."""
    login = await system.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    user_id = jwt.decode(login.token, options={"verify_signature": False})["sub"]
    listed = await system.payments.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id=user_id), metadata=bearer(login.token)
    )
    return list(listed.payments)


def printed(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not in output:\n{text}"
    return match.group(1)


async def test_signs_up_logs_in_pays_and_lists(system: System) -> None:
    run = await run_client(
        *addresses(system),
        "--email=ada@example.com",
        f"--password={PASSWORD}",
        "--amount=2500",
        "--currency=EUR",
        "--description=from C++",
        "--idempotency-key=order-42",
    )

    assert run.code == 0, run.stderr
    assert run.stderr == ""
    user_id = printed(r"^signed up ada@example\.com as user (\S+)$", run.stdout)
    assert printed(r"^logged in as user (\S+);", run.stdout) == user_id
    payment_id = printed(
        r"^payment (\S+): 2500 EUR, PAYMENT_STATUS_\w+ \(idempotency key order-42\)$", run.stdout
    )
    assert printed(r"^(\d+) payment\(s\) of user", run.stdout) == "1"
    assert re.search(
        rf"^  {payment_id}  2500 EUR  .*key=order-42  from C\+\+$", run.stdout, re.MULTILINE
    )

    [recorded] = await payments_of(system, "ada@example.com")
    assert recorded.payment_id == payment_id
    assert recorded.user_id == user_id
    assert (recorded.amount, recorded.currency) == (2500, "EUR")
    assert recorded.idempotency_key == "order-42"
    assert recorded.description == "from C++"


async def test_rerun_with_the_same_key_pays_once(system: System) -> None:
    args = [
        *addresses(system),
        "--email=bob@example.com",
        f"--password={PASSWORD}",
        "--amount=700",
        "--idempotency-key=rent-may",
    ]
    first = await run_client(*args)
    again = await run_client(*args)

    assert (first.code, again.code) == (0, 0), first.stderr + again.stderr
    assert "account bob@example.com exists already" in again.stdout
    pattern = r"^payment (\S+): 700 "
    assert printed(pattern, again.stdout) == printed(pattern, first.stdout)
    assert printed(r"^(\d+) payment\(s\) of user", again.stdout) == "1"
    assert len(await payments_of(system, "bob@example.com")) == 1


async def test_wrong_password_stops_at_login_with_its_status(system: System) -> None:
    await system.users.CreateUser(
        user_pb2.CreateUserRequest(email="cy@example.com", password=PASSWORD)
    )
    run = await run_client(
        *addresses(system), "--email=cy@example.com", "--password=not the password", "--amount=100"
    )

    assert run.code == 1
    auth_addr = f"127.0.0.1:{system.auth_settings.grpc_port}"
    assert re.fullmatch(
        rf"micro_client: log in \(authsvc at {auth_addr}\) failed: UNAUTHENTICATED: .+\n",
        run.stderr,
    ), run.stderr
    assert "payment" not in run.stdout
    assert await payments_of(system, "cy@example.com") == []


async def test_refused_payment_reports_the_field(system: System) -> None:
    run = await run_client(
        *addresses(system), "--email=di@example.com", f"--password={PASSWORD}", "--amount=0"
    )

    assert run.code == 1
    assert "create payment (paymentsvc at " in run.stderr
    assert "failed: INVALID_ARGUMENT: amount" in run.stderr
    assert await payments_of(system, "di@example.com") == []


async def test_unreachable_service_is_unavailable(system: System) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    run = await run_client(
        *addresses(system, paymentsvc=nowhere),
        "--email=ed@example.com",
        f"--password={PASSWORD}",
        "--amount=100",
        "--timeout-seconds=5",
    )

    assert run.code == 1
    assert f"create payment (paymentsvc at {nowhere}) failed: UNAVAILABLE: " in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing --usersvc, --authsvc, --paymentsvc, --email, --password, --amount"),
        (["--amount=ten"], "--amount must be a whole number of minor units (cents), got 'ten'"),
        (["--colour=red"], "unknown flag --colour"),
    ],
)
async def test_usage_mistakes_exit_2_without_calling(args: list[str], message: str) -> None:
    run = await run_client(*args)

    assert run.code == 2
    assert run.stderr.startswith(f"micro_client: {message}\n")
    assert run.stdout == ""


async def test_help_prints_usage() -> None:
    run = await run_client("--help")

    assert run.code == 0
    assert run.stdout.startswith("usage: micro_client --usersvc=HOST:PORT")
