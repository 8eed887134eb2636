"""The services of a rendered overlay as containers: specs, images, start, probes, cleanup.

What the container tests and `//tools/local:run_containers` share:

    specs, rewrites = overlay_specs(kustomize_dir, "dev", SERVICES, HostNetwork(...))
    with Containers(Docker(), workdir) as containers:
        images = load_images(containers.docker, specs, tarballs)
        running = asyncio.run(containers.start_all(specs, images))
        ...
    # every container is removed on exit, whatever happened
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tools.containers import hostnet, render, translate
from tools.containers.docker import Docker, DockerError, run_argv, unique_name
from tools.containers.objects import Rendered
from tools.containers.probes import StartReport, watch_start
from tools.containers.spec import ContainerSpec
from tools.containers.volumes import write_volumes


def overlay_specs(
    kustomize_dir: Path, overlay: str, services: tuple[str, ...], host: hostnet.HostNetwork
) -> tuple[dict[str, ContainerSpec], list[hostnet.Rewrite]]:
    """Render the overlay, translate each service's Deployment, adjust for the host network."""
    rendered = Rendered(tuple(render.render(kustomize_dir, overlay)))
    specs = translate.service_specs(rendered, services)
    return hostnet.for_host_network(rendered, specs, host)


def load_images(
    docker: Docker, specs: Mapping[str, ContainerSpec], tarballs: Mapping[str, Path]
) -> dict[str, str]:
    """Loads each service's tarball; returns the image id to run for each service.

    The tarball must carry the tag the manifest names, or the test would run an image the
    manifest never would. Running by id keeps a parallel load of the same tag elsewhere from
    changing what runs here.
    """
    ids: dict[str, str] = {}
    for name, spec in specs.items():
        loaded = docker.load(tarballs[name])
        if spec.image not in loaded.tags:
            raise DockerError(
                f"{name}: the manifest runs {spec.image}, {tarballs[name]} holds {loaded.tags}"
            )
        ids[name] = loaded.image_id
    return ids


@dataclass(frozen=True)
class Running:
    spec: ContainerSpec
    container: str  # the container's (unique) name
    report: StartReport

    @property
    def address(self) -> str:
        return f"{hostnet.LOOPBACK}:{self.spec.ports['grpc']}"


class Containers:
    """Containers started from specs, all removed (with their volume files) on exit."""

    def __init__(
        self, docker: Docker, workdir: Path, prefix: str = "micro", platform: str | None = None
    ) -> None:
        self.docker = docker
        self.platform = platform
        self.workdir = workdir
        self.prefix = prefix
        self.run_id = secrets.token_hex(4)
        self.names: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove_all()

    def start(self, spec: ContainerSpec, image: str) -> str:
        """`docker run` for spec; returns the container's name (registered for removal first)."""
        name = unique_name(f"{self.prefix}-{spec.name}")
        self.names.append(name)
        mounts = write_volumes(spec, self.workdir / name)
        self.docker.run(run_argv(spec, name, image, mounts, self.run_id, self.platform))
        return name

    async def start_and_watch(self, spec: ContainerSpec, image: str) -> Running:
        t0 = time.monotonic()
        name = await asyncio.to_thread(self.start, spec, image)

        async def alive() -> bool:
            return await asyncio.to_thread(self.docker.running, name)

        report = await watch_start(spec, hostnet.LOOPBACK, t0, alive)
        return Running(spec, name, report)

    async def start_all(
        self, specs: Mapping[str, ContainerSpec], images: Mapping[str, str]
    ) -> dict[str, Running]:
        """Starts every spec at once and follows its probes; all reports, ready or not."""
        started = await asyncio.gather(
            *(self.start_and_watch(spec, images[name]) for name, spec in specs.items())
        )
        return {r.spec.name: r for r in started}

    def stop_all(self, running: Mapping[str, Running]) -> dict[str, float]:
        """`docker stop` with each one's grace period, all at once (as a pod deletion does);
        returns how long each stop took, in seconds."""
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            took = {
                name: pool.submit(self.docker.stop, r.container, r.spec.grace_seconds)
                for name, r in running.items()
            }
            return {name: future.result() for name, future in took.items()}

    def remove_all(self) -> None:
        errors = []
        for name in reversed(self.names):
            try:
                self.docker.remove(name)
            except DockerError as exc:
                errors.append(str(exc))
            shutil.rmtree(self.workdir / name, ignore_errors=True)
        self.names.clear()
        if errors:
            raise DockerError("; ".join(errors))
