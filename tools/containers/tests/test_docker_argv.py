"""`docker run` arguments for the translated dev overlay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tools.containers.docker import parse_time, run_argv
from tools.containers.objects import Rendered
from tools.containers.translate import container_spec
from tools.containers.volumes import HostMount


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_authsvc_runs_as_its_deployment_says(dev: Rendered) -> None:
    spec = container_spec(dev, "authsvc")
    mounts = [HostMount(Path("/tmp/x/0"), "/var/run/secrets/micro/service", True)]  # noqa: S108
    argv = run_argv(spec, "micro-authsvc-1234", "sha256:abc", mounts, "run1")
    assert argv[:2] == ["run", "--detach"] and argv[-1] == "sha256:abc"
    assert _pairs(argv, "--network") == ["host"]
    assert _pairs(argv, "--user") == ["65532:65532"]
    assert "--read-only" in argv
    assert _pairs(argv, "--cap-drop") == ["ALL"]
    assert _pairs(argv, "--security-opt") == ["no-new-privileges"]
    assert _pairs(argv, "--tmpfs") == [f"/tmp:size={64 * 2**20}"]  # noqa: S108 - the pod's /tmp
    assert _pairs(argv, "--mount") == [
        "type=bind,source=/tmp/x/0,target=/var/run/secrets/micro/service,readonly"
    ]
    assert _pairs(argv, "--memory") == [f"{256 * 2**20}b"]
    assert _pairs(argv, "--cpus") == ["0.5"]
    assert _pairs(argv, "--stop-timeout") == [str(spec.grace_seconds)]
    # fsGroup equals the primary group: nothing to add.
    assert "--group-add" not in argv
    # Every variable, in manifest order (later ones may refer to earlier ones).
    assert _pairs(argv, "--env") == [f"{k}={v}" for k, v in spec.env]


def test_docker_times_keep_microseconds() -> None:
    stamp = parse_time("2026-11-26T01:13:00.123456789Z")
    assert stamp == datetime(2026, 11, 26, 1, 13, 0, 123456, tzinfo=UTC)
    assert parse_time("2026-11-26T01:13:00Z").microsecond == 0
