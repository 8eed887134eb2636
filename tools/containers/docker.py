"""Runs ContainerSpecs in a Docker engine through the docker CLI.

`run_argv` is the translation (pure, unit-tested); `Docker` calls the CLI: load, run,
inspect, logs, exec, stop, remove. Containers get a unique name and a label, so parallel runs
on one engine never touch each other's containers and leftovers can be found.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from libs.platform.testing.programs import find_program
from tools.containers.spec import ContainerSpec
from tools.containers.volumes import HostMount

LABEL = "dev.micro.containers"


class DockerError(RuntimeError):
    pass


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def run_argv(
    spec: ContainerSpec,
    name: str,
    image: str,
    mounts: list[HostMount],
    run_id: str,
    platform: str | None = None,
) -> list[str]:
    """`docker run` arguments for `spec`, run detached on the host's network as `name`;
    `platform` (e.g. linux/arm64) names an image variant other than the engine's own."""
    argv = ["run", "--detach", "--name", name, "--label", f"{LABEL}={run_id}"]
    if platform is not None:
        argv += ["--platform", platform]
    # No bridge on this engine: the host network is the only one (see hostnet.py).
    argv += ["--network", "host", "--user", f"{spec.user}:{spec.group}"]
    if spec.fs_group is not None and spec.fs_group != spec.group:
        argv += ["--group-add", str(spec.fs_group)]
    if spec.read_only_root:
        argv.append("--read-only")
    for cap in spec.cap_drop:
        argv += ["--cap-drop", cap]
    if spec.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    for tmpfs in spec.tmpfs:
        size = f":size={tmpfs.size_bytes}" if tmpfs.size_bytes is not None else ""
        argv += ["--tmpfs", f"{tmpfs.mount_path}{size}"]
    for m in mounts:
        # --mount, not -v: a source the engine cannot see is an error, not an empty directory.
        ro = ",readonly" if m.read_only else ""
        argv += ["--mount", f"type=bind,source={m.source},target={m.target}{ro}"]
    if spec.memory_bytes is not None:
        argv += ["--memory", f"{spec.memory_bytes}b"]
    if spec.cpus is not None:
        argv += ["--cpus", f"{spec.cpus:g}"]
    # What `docker stop` without -t (and the engine's own shutdown) waits, as the kubelet does.
    argv += ["--stop-timeout", str(spec.grace_seconds)]
    for key, value in spec.env:
        argv += ["--env", f"{key}={value}"]
    return [*argv, image]


@dataclass(frozen=True)
class LoadedImage:
    image_id: str  # sha256:<config digest>: what runs, whatever a tag points at meanwhile
    tags: tuple[str, ...]


def image_in_tarball(tarball: Path) -> LoadedImage:
    """The image id and tags a `docker load` tarball holds, read from its manifest.json."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise DockerError(f"{tarball}: no manifest.json, not a docker load tarball")
        (entry,) = json.load(member)
    digest = Path(entry["Config"]).name.removesuffix(".json")
    return LoadedImage(f"sha256:{digest}", tuple(entry.get("RepoTags") or ()))


def parse_time(stamp: str) -> datetime:
    """Docker's RFC 3339 times carry nanoseconds; datetime keeps microseconds."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    if not match:
        raise DockerError(f"not a docker timestamp: {stamp!r}")
    whole, fraction, zone = match.groups()
    micro = f".{(fraction or '0')[:6]}"
    return datetime.fromisoformat(whole + micro + zone.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Exited:
    code: int
    oom_killed: bool
    started_at: datetime
    finished_at: datetime


class Docker:
    """The docker CLI against whatever engine it reaches (DOCKER_HOST or the default socket)."""

    def __init__(self, cli: str | None = None) -> None:
        # Bazel gives tests a fixed PATH: Homebrew's docker (colima on Apple silicon, in
        # /opt/homebrew/bin) is found the way the other test tools are.
        found = find_program("docker") if cli is None else None
        self.cli = cli or (str(found) if found else "docker")

    def _run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            # The argv is built here from specs and names, never through a shell.
            result = subprocess.run(  # noqa: S603
                [self.cli, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DockerError(f"docker {args[0]}: {exc}") from exc
        if check and result.returncode != 0:
            raise DockerError(
                f"docker {' '.join(args[:3])} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def unavailable(self) -> str | None:
        """None when an engine answers `docker info`, else a one-line reason."""
        if shutil.which(self.cli) is None:
            return f"no container engine answers ({self.cli} CLI not on PATH)"
        try:
            result = self._run("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
        except DockerError as exc:
            return f"no container engine answers (docker info failed: {exc})"
        if result.returncode != 0 or not result.stdout.strip():
            detail = result.stderr.strip().splitlines()[-1:] or ["no server version"]
            return f"no container engine answers (docker info failed: {detail[0]})"
        return None

    def cannot_run(self, image: str, platform: str) -> str | None:
        """None when the engine runs `image` as `platform` (natively or emulated), else why not."""
        result = self._run(
            "run",
            "--rm",
            "--platform",
            platform,
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            "uname -m",
            check=False,
            timeout=120,
        )
        if result.returncode == 0:
            return None
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the engine cannot run {platform} images ({detail}); tools/containers/engine/emulation.sh ensure"

    def load(self, tarball: Path) -> LoadedImage:
        image = image_in_tarball(tarball)
        self._run("load", "--input", str(tarball), timeout=600)
        return image

    def run(self, argv: list[str]) -> str:
        """Starts a container from run_argv's arguments; returns its id."""
        return self._run(*argv).stdout.strip()

    def inspect(self, name: str) -> dict[str, Any]:
        (info,) = json.loads(self._run("container", "inspect", name).stdout)
        inspected: dict[str, Any] = info
        return inspected

    def running(self, name: str) -> bool:
        return bool(self.inspect(name)["State"]["Running"])

    def exited(self, name: str) -> Exited:
        state = self.inspect(name)["State"]
        if state["Running"]:
            raise DockerError(f"{name} is still running")
        return Exited(
            int(state["ExitCode"]),
            bool(state["OOMKilled"]),
            parse_time(state["StartedAt"]),
            parse_time(state["FinishedAt"]),
        )

    def wait_exit(self, name: str, timeout: float) -> Exited:
        deadline = time.monotonic() + timeout
        while self.running(name):
            if time.monotonic() > deadline:
                raise DockerError(f"{name} still running after {timeout}s")
            time.sleep(0.1)
        return self.exited(name)

    def logs(self, name: str) -> str:
        result = self._run("logs", name, check=False)
        return result.stdout + result.stderr

    def exec(self, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """Runs argv in the container (as its user); the caller reads the result."""
        return self._run("exec", name, *argv, check=False, timeout=30)

    def stop(self, name: str, grace: int) -> float:
        """SIGTERM, then SIGKILL after `grace` seconds; returns how long the stop took."""
        start = time.monotonic()
        # The CLI itself returns once the container is gone, at most grace + a little later.
        self._run("stop", "--time", str(grace), name, timeout=grace + 60)
        return time.monotonic() - start

    def remove(self, name: str) -> None:
        """Removes the container whatever its state; a container already gone is fine."""
        result = self._run("rm", "--force", name, check=False, timeout=60)
        if result.returncode != 0 and "No such container" not in result.stderr:
            raise DockerError(f"docker rm {name} failed: {result.stderr.strip()}")
