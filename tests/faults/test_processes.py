"""The real service binaries as child processes: SIGKILL, SIGTERM under load, no database."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.testing.net import free_port
from libs.platform.testing.processes import ServiceProcess
from libs.platform.testing.security import bearer
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.authsvc import app as authapp
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc import app as payapp
from services.paymentsvc.config import Settings as PaySettings
from tests.faults.system import USER_ENV_CHEAP_ARGON2, FaultSystem
from user.v1 import user_pb2, user_pb2_grpc

FAIL_FAST_S = 1.5


def usersvc_process(faults: FaultSystem, dsn: str) -> ServiceProcess:
    env = faults.process_env("usersvc", DATABASE_URL=dsn, **USER_ENV_CHEAP_ARGON2)
    return ServiceProcess("usersvc", env)


async def test_startup_without_database_retries_then_exits_nonzero() -> None:
    proc = ServiceProcess(
        "usersvc", {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nope"}
    ).start()
    try:
        start = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 30)
        took = time.monotonic() - start
    finally:
        proc.kill()
    assert code == 1
    retries = [r for r in proc.records if r.get("msg") == "database connection failed, retrying"]
    assert [r["attempt"] for r in retries] == [1, 2, 3, 4, 5]
    assert all("retry_in_s" in r and "Connect" in r["error"] for r in retries)
    final = [r for r in proc.records if r.get("level") == "ERROR"]
    assert any(r["msg"].startswith("cannot start: could not connect") for r in final), final
    # Bounded: 5 backoffs of at most 0.25, 0.5, 1, 2, 4 s plus interpreter start-up.
    assert took < 20


@pytest.fixture
async def users_process(new_database, faults: FaultSystem) -> AsyncIterator[tuple]:
    dsn = await new_database()
    proc = usersvc_process(faults, dsn).start()
    try:
        await asyncio.to_thread(proc.wait_serving)
        yield proc, dsn
    finally:
        proc.kill()


async def timed(coro) -> tuple[grpc.StatusCode, float]:
    start = time.monotonic()
    try:
        await coro
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    return code, time.monotonic() - start


async def test_killed_usersvc_fails_fast_and_recovers(users_process, new_database, faults) -> None:
    proc, users_dsn = users_process
    pay = await payapp.start(
        faults.settings(
            PaySettings,
            "paymentsvc",
            database_url=await new_database(),
            usersvc_timeout_seconds=1.0,
        )
    )
    auth = await authapp.start(
        faults.settings(
            AuthSettings, "authsvc", database_url=await new_database(), usersvc_timeout_seconds=1.0
        )
    )
    restarted: ServiceProcess | None = None
    try:
        async with (
            grpc.aio.insecure_channel(faults.wired.address("usersvc")) as uch,
            grpc.aio.insecure_channel(f"127.0.0.1:{pay.port}") as pch,
            grpc.aio.insecure_channel(f"127.0.0.1:{auth.port}") as ach,
        ):
            user = await user_pb2_grpc.UserServiceStub(uch).CreateUser(
                user_pb2.CreateUserRequest(email="kill@example.com", password="correct horse")
            )
            payments = payment_pb2_grpc.PaymentServiceStub(pch)
            logins = auth_pb2_grpc.AuthServiceStub(ach)
            as_user = bearer(
                (
                    await logins.Login(
                        auth_pb2.LoginRequest(email="kill@example.com", password="correct horse")
                    )
                ).token
            )

            def pay_call(key: str):
                return payments.CreatePayment(
                    payment_pb2.CreatePaymentRequest(
                        user_id=user.user_id, amount=5, idempotency_key=key
                    ),
                    timeout=5,
                    metadata=as_user,
                )

            def login_call() -> Any:
                return logins.Login(
                    auth_pb2.LoginRequest(email="kill@example.com", password="correct horse"),
                    timeout=5,
                )

            assert (await timed(pay_call("before")))[0] == grpc.StatusCode.OK
            assert (await timed(login_call()))[0] == grpc.StatusCode.OK

            proc.send(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            for i in range(3):
                for code, took in (await timed(pay_call(f"down-{i}")), await timed(login_call())):
                    assert code == grpc.StatusCode.UNAVAILABLE
                    assert took < FAIL_FAST_S, f"call took {took:.2f}s while usersvc was down"
                    print(f"usersvc down: {code.name} in {took:.3f}s")

            restarted = usersvc_process(faults, users_dsn).start()
            await asyncio.to_thread(restarted.wait_serving)
            start = time.monotonic()
            while True:
                pay_code, _ = await timed(pay_call("after"))
                login_code, _ = await timed(login_call())
                if pay_code == login_code == grpc.StatusCode.OK:
                    break
                assert time.monotonic() - start < 10, (pay_code, login_code)
                await asyncio.sleep(0.2)
    finally:
        if restarted is not None:
            restarted.kill()
        await auth.stop(0)
        await pay.stop(0)


class SlowUsers(user_pb2_grpc.UserServiceServicer):
    """usersvc stand-in whose GetUser takes a while, so SIGTERM lands on calls in flight."""

    def __init__(self, user_id: str, delay: float) -> None:
        self.user_id = user_id
        self.delay = delay

    async def GetUser(self, request, context):
        await asyncio.sleep(self.delay)
        if request.user_id != self.user_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return user_pb2.GetUserResponse(user_id=request.user_id, email="x@example.com")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


async def test_sigterm_under_load_drains_and_loses_nothing(new_database, faults) -> None:
    grace = 3.0
    user_id = str(uuid.uuid4())
    users = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(SlowUsers(user_id, delay=0.3), users)
    users.add_insecure_port(faults.wired.address("usersvc"))
    await users.start()
    await faults.stand_in_for_issuer()
    as_user = faults.user_metadata(user_id)
    dsn = await new_database()
    proc = ServiceProcess(
        "paymentsvc",
        faults.process_env("paymentsvc", DATABASE_URL=dsn, SHUTDOWN_GRACE_SECONDS=str(grace)),
    ).start()
    acked: dict[str, str] = {}
    acked_after_sigterm: list[str] = []
    sigterm_at: float | None = None
    stop_load = asyncio.Event()
    enough = asyncio.Event()  # set once 16 payments are acknowledged
    try:
        port = await asyncio.to_thread(proc.wait_serving)
        metrics_port = await asyncio.to_thread(proc.metrics_port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = payment_pb2_grpc.PaymentServiceStub(channel)

            async def worker(n: int) -> None:
                i = 0
                while not stop_load.is_set():
                    key = f"w{n}-{i}"
                    i += 1
                    try:
                        resp = await stub.CreatePayment(
                            payment_pb2.CreatePaymentRequest(
                                user_id=user_id, amount=7, idempotency_key=key
                            ),
                            timeout=5,
                            metadata=as_user,
                        )
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(0.05)  # refused after SIGTERM: keep knocking
                        continue
                    acked[key] = resp.payment_id
                    if len(acked) >= 16:
                        enough.set()
                    if sigterm_at is not None:
                        acked_after_sigterm.append(key)

            workers = [asyncio.create_task(worker(n)) for n in range(8)]
            await enough.wait()
            body = await asyncio.to_thread(scrape, metrics_port)
            assert 'grpc_code="OK",grpc_method="/payment.v1.PaymentService/CreatePayment"' in body
            sigterm_at = time.monotonic()
            proc.send(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, grace + 10)
            exited_after = time.monotonic() - sigterm_at
            stop_load.set()
            await asyncio.gather(*workers)
    finally:
        proc.kill()
        await users.stop(0)

    print(
        f"sigterm: exit {code} after {exited_after:.3f}s (grace {grace}s), {len(acked)} acked, "
        f"{len(acked_after_sigterm)} completed after SIGTERM"
    )
    assert code == 0, "".join(proc.raw[-20:])
    assert exited_after < grace + 2, f"exit took {exited_after:.2f}s with a {grace}s grace"
    assert "shutdown requested, draining" in proc.messages()
    # Calls that were in flight at SIGTERM finished instead of being cut off.
    assert acked_after_sigterm, "no call in flight at SIGTERM was completed"
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT idempotency_key, id::text AS id FROM payments")
    finally:
        await conn.close()
    stored = {r["idempotency_key"]: r["id"] for r in rows}
    missing = {k for k, pid in acked.items() if stored.get(k) != pid}
    assert not missing, f"acknowledged payments lost: {sorted(missing)}"


def other_addresses_of_this_host() -> list[str]:
    """Addresses besides 127.0.0.1 that reach this host: another loopback address (all of
    127.0.0.0/8 is this host on Linux) and, when there is a route, the one facing out."""
    found = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1; a UDP connect sends nothing
            own = probe.getsockname()[0]
        except OSError:
            own = ""
    if own and not own.startswith("127."):
        found.append(own)
    return found


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("env", "beyond_loopback"),
    [({}, False), ({"METRICS_ADDRESS": "0.0.0.0"}, True)],  # noqa: S104 - the opt-in tested
    ids=["default", "all-interfaces"],
)
async def test_metrics_answer_beyond_loopback_only_when_configured(
    new_database, faults, env: dict[str, str], beyond_loopback: bool
) -> None:
    """/metrics has no authentication. It once listened on every interface by default; now
    whoever can reach the host by any address but loopback must find the port closed,
    unless METRICS_ADDRESS opens it (as the Kubernetes manifests do)."""
    proc = ServiceProcess(
        "usersvc",
        faults.process_env(
            "usersvc", DATABASE_URL=await new_database(), **USER_ENV_CHEAP_ARGON2, **env
        ),
    ).start()
    try:
        port = await asyncio.to_thread(proc.metrics_port)
        assert "health_serving" in await asyncio.to_thread(scrape, port)  # loopback: always
        for host in other_addresses_of_this_host():
            reached = await asyncio.to_thread(accepts_connections, host, port)
            assert reached == beyond_loopback, f"{host}:{port} reached={reached}"
    finally:
        proc.kill()
