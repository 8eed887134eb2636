"""Every service image in a real container engine, run as the rendered dev overlay says.

The dev overlay is rendered with kustomize and each Deployment translated into `docker run`
(tools/containers): image, env with Secrets and $(VAR) resolved, mounted Secret and
ConfigMap files, user, read-only root, dropped capabilities, limits, probes. The only
changes are the host-network rewrites (tools/containers/hostnet.py), printed in the summary.
The services use the roles, passwords and databases the manifests name, created in a
throwaway PostgreSQL the way the postgres StatefulSet's init script creates them.

Needs an engine that `docker info` reaches (tools/containers/engine/docker.sh starts one); without one
every test skips with that reason. IMAGE_VARIANT (BUILD.bazel) picks the images, `amd64` or
`arm64`, run with `--platform linux/<variant>` (emulated when the engine's CPU differs:
tools/containers/engine/emulation.sh); they skip with the reason if the engine cannot run them.
Measurements (time from `docker run` to SERVING, the probes' answers, the flow's results,
stop times) are printed in the run's summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from libs import inventory
from libs.platform.testing.net import free_port
from tools.containers import database
from tools.containers.docker import Docker
from tools.containers.hostnet import HostNetwork
from tools.containers.spec import ContainerSpec
from tools.containers.system import Containers, Running, load_images, overlay_specs
from tools.oci.tests.flow import signup_login_pay_list
from tools.pytest.workspace import workspace_root

SERVICES = inventory.load().names()
NONROOT = "65532"
VARIANT = os.environ["IMAGE_VARIANT"]
PLATFORM = f"linux/{VARIANT}"


# The engine's own CPU runs its variant natively; the other one runs under qemu-user, an
# order of magnitude slower (a default argon2id check takes seconds instead of ~50 ms).
_NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
EMULATED = VARIANT != _NATIVE
# What an emulated run changes, nothing else: each caller's deadline for the services it
# calls (the inventory's `calls`: <CALLEE>_TIMEOUT_SECONDS, 2 s by default), and the
# startup probe's number of attempts (a start takes ~15 s alone, ~50 s three at once on two
# cores). The work (argon2 cost, pool sizes) and the other probes stay as the manifests say.
EMULATED_CALL_TIMEOUT = "30"
EMULATED_STARTUP_FACTOR = 3


def _for_emulation(specs: dict[str, ContainerSpec]) -> tuple[dict[str, ContainerSpec], list[str]]:
    inv = inventory.load()
    out, changes = {}, []
    for name, spec in specs.items():
        longer = {
            f"{inv.get(callee).env_prefix}_TIMEOUT_SECONDS": EMULATED_CALL_TIMEOUT
            for callee in inv.get(name).calls
        }
        env = tuple((k, v) for k, v in spec.env if k not in longer) + tuple(longer.items())
        probes = dict(spec.probes)
        startup = probes["startup"]
        probes["startup"] = dataclasses.replace(
            startup, failure_threshold=startup.failure_threshold * EMULATED_STARTUP_FACTOR
        )
        out[name] = dataclasses.replace(spec, env=env, probes=probes)
        changes += [f"  {name}: env {k}={v}" for k, v in longer.items()]
        changes.append(
            f"  {name}: startup probe failureThreshold {startup.failure_threshold} -> "
            f"{probes['startup'].failure_threshold}"
        )
    return out, changes


def _tarball(svc: str) -> Path:
    load = f"image_load_{VARIANT}"
    return Path(os.environ["TEST_SRCDIR"], "_main", "services", svc, load, "tarball.tar")


# Session-wide and autouse, so pytest asks it before anything else, the PostgreSQL cluster
# included: without an engine every test skips, and nothing is started.
@pytest.fixture(scope="session", autouse=True)
def docker() -> Docker:
    engine = Docker()
    why_not = engine.unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    return engine


@dataclass
class System:
    containers: Containers
    specs: dict[str, ContainerSpec]
    images: dict[str, str]
    running: dict[str, Running]


@pytest.fixture(scope="module")
def system(
    docker: Docker,
    pg_admin_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
    measured: Callable[[str], None],
) -> Iterator[System]:
    pg = urlsplit(pg_admin_dsn)
    # Metrics ports too: every manifest says 9090, which collides on one host network.
    ports = {svc: {"grpc": free_port(), "metrics": free_port()} for svc in SERVICES}
    host = HostNetwork(ports, {"postgres": f"{pg.hostname}:{pg.port or 5432}"})
    kustomize_dir = workspace_root("deploy/kustomize", __file__) / "deploy/kustomize"
    specs, rewrites = overlay_specs(kustomize_dir, "dev", SERVICES, host)
    measured("host-network rewrites of the rendered dev overlay:")
    for rewrite in rewrites:
        measured(f"  {rewrite}")
    if EMULATED:
        specs, changes = _for_emulation(specs)
        measured(f"emulated {PLATFORM} (the engine runs {_NATIVE}): longer time budgets:")
        for change in changes:
            measured(change)

    start = time.monotonic()
    images = load_images(docker, specs, {svc: _tarball(svc) for svc in SERVICES})
    measured(f"docker load of the {len(SERVICES)} tarballs: {time.monotonic() - start:.1f}s")
    why_not = docker.cannot_run(images[SERVICES[0]], PLATFORM)
    if why_not is not None:
        pytest.skip(why_not)
    measured(f"variant: {PLATFORM}")

    made: list[database.Credentials] = []
    try:
        for spec in specs.values():
            made.append(asyncio.run(database.create(pg_admin_dsn, spec.env_value("DATABASE_URL"))))
        workdir = tmp_path_factory.mktemp("containers")
        with Containers(docker, workdir, platform=PLATFORM) as containers:
            running = asyncio.run(containers.start_all(specs, images))
            for svc, r in running.items():
                first = r.report.first_serving
                measured(
                    f"{svc}: docker run -> readiness SERVING "
                    f"{f'{first:.2f}s' if first is not None else 'never'}"
                )
                for probe in r.report.probes:
                    measured(f"  {probe}")
            yield System(containers, specs, images, running)
    finally:
        for creds in made:
            asyncio.run(database.drop(pg_admin_dsn, creds))


def _logs(system: System, svc: str) -> str:
    return system.containers.docker.logs(system.running[svc].container)


@pytest.mark.parametrize("svc", SERVICES)
def test_startup_then_readiness_and_liveness_pass(svc: str, system: System) -> None:
    report = system.running[svc].report
    assert report.ready, f"{svc} probes: {list(map(str, report.probes))}\n{_logs(system, svc)}"
    probes = {p.kind: p for p in report.probes}
    assert set(probes) == {"startup", "readiness", "liveness"}
    startup = probes["startup"]
    assert startup.passed_at is not None
    # The kubelet would have restarted the container after this many failed attempts.
    assert len(startup.answers) <= startup.probe.failure_threshold
    for kind in ("readiness", "liveness"):
        # Asked only once the startup probe passed, with the service name the probe names.
        assert probes[kind].answers[0].at >= startup.passed_at, kind
        assert len(probes[kind].answers) <= probes[kind].probe.failure_threshold, kind
    for probe in probes.values():
        passing = probe.answers[-1]
        assert passing.status == "SERVING"
        assert passing.latency < probe.probe.timeout, f"{probe.kind} answered too late"
    assert report.first_serving is not None


@pytest.fixture
async def channels(system: System) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    chans = {svc: grpc.aio.insecure_channel(r.address) for svc, r in system.running.items()}
    yield chans
    for ch in chans.values():
        await ch.close()


def _not_ready(system: System) -> list[str]:
    return [svc for svc, r in system.running.items() if not r.report.ready]


async def test_signup_login_pay_list_across_the_containers(
    system: System, channels: dict[str, grpc.aio.Channel], measured: Callable[[str], None]
) -> None:
    assert not _not_ready(system), f"not started: {_not_ready(system)} (see the probe test)"
    # authsvc checks the password through usersvc, signing with the dev service key.
    journey = await signup_login_pay_list(channels, "ctr")
    measured(f"flow: {journey.summary()}")


@pytest.mark.parametrize("svc", SERVICES)
def test_runs_as_65532_with_a_read_only_root(svc: str, system: System) -> None:
    docker, name = system.containers.docker, system.running[svc].container
    assert docker.running(name), f"{svc} is not running:\n{_logs(system, svc)}"
    info = docker.inspect(name)
    assert info["Config"]["User"] == f"{NONROOT}:{NONROOT}"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    # The service itself (pid 1), not just what docker exec would run as.
    status = dict(
        line.split(":", 1)
        for line in docker.exec(name, "cat", "/proc/1/status").stdout.splitlines()
    )
    assert status["Uid"].split() == [NONROOT] * 4
    assert status["Gid"].split() == [NONROOT] * 4
    assert int(status["CapEff"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    # The image has a shell and touch; /tmp (the emptyDir) is writable, the rest is not.
    assert docker.exec(name, "touch", "/tmp/probe").returncode == 0  # noqa: S108
    denied = docker.exec(name, "touch", "/app/probe")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"GRPC_PORT": "not-a-port"}, "GRPC_PORT: expected an integer, got 'not-a-port'"),
        ({"DATABASE_URL": None}, "DATABASE_URL is required but not set"),
    ],
    ids=["GRPC_PORT=not-a-port", "no-DATABASE_URL"],
)
def test_a_wrong_setting_stops_the_container_with_its_name(
    change: dict[str, str | None],
    message: str,
    system: System,
    measured: Callable[[str], None],
) -> None:
    spec = system.specs["usersvc"]
    env = []
    for key, value in spec.env:
        new = change.get(key, value)
        if new is not None:  # None: left out
            env.append((key, new))
    broken = dataclasses.replace(spec, env=tuple(env))
    name = system.containers.start(broken, system.images["usersvc"])
    exited = system.containers.docker.wait_exit(name, timeout=60)
    logs = system.containers.docker.logs(name)
    # libs/platform/runner.py: a ConfigError exits 2 and names every bad setting.
    assert exited.code == 2, logs
    assert message in logs
    what = ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in change.items())
    measured(f"usersvc with {what}: exit {exited.code}, log: {logs.strip()!r}")


# Last in this file: it stops the containers the tests above use.
@pytest.mark.parametrize("svc", SERVICES)
def test_sigterm_stops_within_the_grace_period_with_exit_0(
    svc: str, system: System, measured: Callable[[str], None]
) -> None:
    docker, running = system.containers.docker, system.running[svc]
    grace = running.spec.grace_seconds
    assert docker.running(running.container), f"{svc} had exited:\n{_logs(system, svc)}"
    asked = datetime.now(UTC)
    took = docker.stop(running.container, grace)
    exited = docker.exited(running.container)
    after_sigterm = (exited.finished_at - asked).total_seconds()
    measured(
        f"{svc}: docker stop -t {grace}: exit {exited.code}, exited {after_sigterm:.2f}s after "
        f"SIGTERM (docker stop took {took:.2f}s)"
    )
    # 137 would mean the engine had to SIGKILL it after the grace period.
    assert exited.code == 0, docker.logs(running.container)
    assert not exited.oom_killed
    assert after_sigterm < grace
    assert took < grace
