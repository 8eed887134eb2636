"""Secret and ConfigMap volumes as host directories, written the way the kubelet writes them.

Each volume's keys become files with the volume's defaultMode, group-owned by the pod's
fsGroup as the kubelet does, so the container's user reads them through that group and
nobody else can. The directory is bind-mounted read-only at the volume's mountPath, so
it must be on a path the engine sees at the same place (the checkout, /tmp and the Bazel
output base are, for tools/bazel's Debian root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tools.containers.spec import ContainerSpec, Volume


@dataclass(frozen=True)
class HostMount:
    source: Path
    target: str
    read_only: bool


def _set_owner(path: Path, mode: int, group: int | None) -> None:
    """chmod, and chgrp to `group`; only root may give a file to a group it is not in, so
    without root what the group may do is granted to everyone instead."""
    if group is not None:
        try:
            os.chown(path, -1, group)
        except PermissionError:
            mode |= (mode & 0o070) >> 3
    path.chmod(mode)


def write_volume(volume: Volume, directory: Path, group: int | None) -> HostMount:
    """The volume's files in `directory` (created), with its mode, group-owned by `group`.

    Without fsGroup (`group` None) the files keep the writer's ownership, as the kubelet
    leaves them root's: a container user other than root then cannot read a 0440 file, in
    Kubernetes or here.
    """
    directory.mkdir(parents=True)
    for f in volume.files:
        path = directory / f.name
        path.write_bytes(f.data)
        _set_owner(path, volume.mode, group)
    # Entering the directory needs x for the same readers the files have r for.
    _set_owner(directory, 0o750 if group is not None else 0o755, group)
    return HostMount(directory, volume.mount_path, volume.read_only)


def write_volumes(spec: ContainerSpec, directory: Path) -> list[HostMount]:
    """Every Secret and ConfigMap volume of `spec`, one subdirectory each under `directory`."""
    return [
        write_volume(volume, directory / f"{spec.name}-{i}", spec.fs_group)
        for i, volume in enumerate(spec.volumes)
    ]
