"""Each service image, run from its docker-load tarball against PostgreSQL, no engine.

Each image is unpacked and its entrypoint started in a read-only chroot as the image's
user (65532), with DATABASE_URL pointing at a throwaway cluster over TCP: the same way the
Deployments run them, minus the container engine. That needs root; for anyone else the
tests skip (see find_runner).

Chroot only, on purpose: containers_test (test_containers.py) runs the same images in a real
engine, as the rendered dev overlay wires them, with the same flow and more (probes, SIGTERM,
a wrong setting). An engine runner here would repeat it; this test stays for machines with
root but no engine, and checks the image's own config (User, Entrypoint) without one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs import inventory
from libs.platform.testing.net import free_port
from libs.platform.testing.postgres import create_database
from libs.platform.testing.topology import Wired, mounted
from tools.oci.tests.container import Container, unpack
from tools.oci.tests.flow import signup_login_pay_list

INVENTORY = inventory.load()
SERVICES = INVENTORY.names()
# Inside each container: the only writable place is its own /tmp tmpfs (Container).
SECRETS = "/tmp/keys"  # noqa: S108


def _tarball(svc: str) -> Path:
    return Path(os.environ["TEST_SRCDIR"], "_main", "services", svc, "image_load", "tarball.tar")


@dataclass
class Running:
    container: Container
    addr: str


# Starts one image: (docker-load tarball, a scratch dir of its own, environment, files for
# its /tmp) -> the running entrypoint.
StartImage = Callable[[Path, Path, dict[str, str], dict[str, bytes]], Container]


@dataclass(frozen=True)
class Runner:
    """A way to run an image on this machine."""

    name: str
    start: StartImage


def _start_chroot(
    tarball: Path, work: Path, env: dict[str, str], files: dict[str, bytes]
) -> Container:
    config = unpack(tarball, work / "rootfs")
    return Container(work / "rootfs", config, env, work / "log.txt", files).start()


def find_runner() -> tuple[Runner | None, str]:
    """The runner this machine offers, else None and why not (the skip reason).

    Root always gets chroot, so as root the tests run and any failure shows; they are never
    skipped. Without root there is no runner here: with a container engine, containers_test
    runs these images (see the module docstring).
    """
    if os.geteuid() == 0:
        return Runner("chroot", _start_chroot), ""
    return None, "needs root for chroot; containers_test runs the images in a container engine"


# Session-wide and autouse, so pytest runs it before the session's PostgreSQL cluster
# (pg_admin_dsn): a machine that cannot run images skips without starting one.
@pytest.fixture(scope="session", autouse=True)
def runner() -> Runner:
    found, why_not = find_runner()
    if found is None:
        pytest.skip(why_not)
    return found


def _service_settings(
    pg_admin_dsn: str, keys: Path
) -> dict[str, tuple[dict[str, str], dict[str, bytes]]]:
    """Environment and secret files per service: production's wiring (the topology module,
    as deploy/kustomize has it), each container seeing only its own keys under SECRETS."""
    wired = Wired.on_loopback(INVENTORY, keys, SERVICES)
    out = {}
    for svc in SERVICES:
        env, files = mounted(wired.process_env(svc), keys, SECRETS)
        env["DATABASE_URL"] = asyncio.run(create_database(pg_admin_dsn))
        env["METRICS_PORT"] = str(free_port())
        out[svc] = (env, {f"keys/{name}": data for name, data in files.items()})
    return out


@pytest.fixture(scope="module")
def system(
    runner: Runner, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Running]]:
    running: dict[str, Running] = {}
    try:
        wiring = _service_settings(pg_admin_dsn, tmp_path_factory.mktemp("keys"))
        for svc, (env, files) in wiring.items():
            container = runner.start(_tarball(svc), tmp_path_factory.mktemp(svc), env, files)
            running[svc] = Running(container, f"127.0.0.1:{env['GRPC_PORT']}")
        asyncio.run(_wait_serving(running))
        yield running
    finally:
        for r in reversed(running.values()):
            r.container.stop()


async def _wait_serving(running: dict[str, Running]) -> None:
    timeout = 60.0

    async def one(svc: str, r: Running) -> None:
        async with grpc.aio.insecure_channel(r.addr) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                assert r.container.proc is not None
                if r.container.proc.poll() is not None:
                    raise AssertionError(
                        f"{svc} exited {r.container.proc.returncode}:\n{r.container.log.read_text()}"
                    )
                try:
                    resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(
                        f"{svc} not SERVING after {timeout}s:\n{r.container.log.read_text()}"
                    )
                await asyncio.sleep(0.2)

    await asyncio.gather(*(one(svc, r) for svc, r in running.items()))


@pytest.fixture
async def channels(system: dict[str, Running]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    chans = {svc: grpc.aio.insecure_channel(r.addr) for svc, r in system.items()}
    yield chans
    for ch in chans.values():
        await ch.close()


@pytest.mark.parametrize("svc", SERVICES)
async def test_health_serving(svc: str, channels: dict[str, grpc.aio.Channel]) -> None:
    proto = INVENTORY.get(svc).proto
    # Each service's gRPC service is <proto>.v1.<Proto>Service (protos/<proto>/v1).
    for service in ("", f"{proto}.v1.{proto.capitalize()}Service"):
        resp = await health_pb2_grpc.HealthStub(channels[svc]).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("svc", SERVICES)
def test_runs_as_nonroot_on_read_only_root(svc: str, system: dict[str, Running]) -> None:
    # Looks at the process from outside, through /proc: written for the chroot runner.
    proc = system[svc].container.proc
    assert proc is not None and proc.poll() is None
    status = Path(f"/proc/{proc.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["65532"] * 4
    # The process's root is the unpacked image, mounted read-only.
    assert os.readlink(f"/proc/{proc.pid}/root") == str(system[svc].container.root)
    with pytest.raises(OSError, match="Read-only file system"):
        (system[svc].container.root / "app" / "probe").write_text("x")


async def test_signup_login_pay_list_through_images(channels: dict[str, grpc.aio.Channel]) -> None:
    journey = await signup_login_pay_list(channels, "img")
    login = journey.login

    await auth_pb2_grpc.AuthServiceStub(channels["authsvc"]).Logout(
        auth_pb2.LogoutRequest(refresh_token=login.refresh_token), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channels["authsvc"]).RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
