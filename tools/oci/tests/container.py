"""Runs an image's entrypoint without a container engine: unpack, chroot, drop to its user.

The rootfs is unpacked from the docker-load tarball (the file k3d imports), then mounted
read-only with a tmpfs on /tmp, as the Kubernetes Deployments run it
(readOnlyRootFilesystem). Needs root: mounts and chroot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any, Self


def _safe_name(name: str) -> str:
    rel = PurePosixPath("/", name)
    if ".." in rel.parts:
        raise ValueError(f"layer entry escapes the rootfs: {name!r}")
    return str(rel).lstrip("/")


def _apply_layer(layer: tarfile.TarFile, root: Path) -> None:
    """One layer over the rootfs, honouring OCI whiteouts (.wh.NAME, .wh..wh..opq)."""
    for member in layer.getmembers():
        rel = _safe_name(member.name)
        if not rel:
            continue
        head, tail = os.path.split(rel)
        if tail == ".wh..wh..opq":
            for child in (root / head).iterdir():
                shutil.rmtree(
                    child
                ) if child.is_dir() and not child.is_symlink() else child.unlink()
            continue
        if tail.startswith(".wh."):
            target = root / head / tail[4:]
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            continue
        target = root / rel
        if (target.exists() or target.is_symlink()) and not (member.isdir() and target.is_dir()):
            shutil.rmtree(
                target
            ) if target.is_dir() and not target.is_symlink() else target.unlink()
        member.name = rel
        layer.extract(member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")


def unpack(tarball: Path, root: Path) -> dict[str, Any]:
    """Unpacks a docker-load tarball's layers into root; returns the image config."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        config = json.load(outer.extractfile(manifest["Config"]))
        for name in manifest["Layers"]:
            blob = outer.extractfile(name)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r:*") as layer:
                _apply_layer(layer, root)
    return config


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)  # noqa: S603, S607


class Container:
    """The image's entrypoint in a read-only chroot, as the image's user, until stop()."""

    def __init__(
        self,
        root: Path,
        config: dict[str, Any],
        env: dict[str, str],
        log: Path,
        tmp_files: dict[str, bytes] | None = None,
    ) -> None:
        self.root = root
        # Written into the container's /tmp tmpfs: the stand-in for mounted Secrets.
        self.tmp_files = tmp_files or {}
        self.config = config["config"]
        self.env = {**dict(e.split("=", 1) for e in self.config.get("Env", [])), **env}
        self.log = log
        self.mounts: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def _mount_all(self) -> None:
        _mount("--bind", str(self.root), str(self.root))
        self.mounts.append(self.root)
        _mount("-o", "remount,bind,ro", str(self.root))
        # Mount points exist in the image; mounting onto a read-only tree writes nothing.
        for target, opts in (
            ("tmp", ["-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs"]),
            ("proc", ["-t", "proc", "proc"]),
            ("dev", ["--bind", "/dev"]),
        ):
            path = self.root / target
            _mount(*opts, str(path))
            self.mounts.append(path)
        for rel, data in self.tmp_files.items():
            path = self.root / "tmp" / _safe_name(rel)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            path.write_bytes(data)
            path.chmod(0o644)

    def start(self) -> Self:
        user = self.config.get("User", "0:0")
        uid, _, gid = user.partition(":")
        workdir = self.config.get("WorkingDir") or "/"
        root = str(self.root)

        def enter() -> None:
            os.chroot(root)
            os.chdir(workdir)
            os.setgroups([])
            os.setgid(int(gid or uid))
            os.setuid(int(uid))

        try:
            self._mount_all()
            argv = list(self.config.get("Entrypoint") or []) + list(self.config.get("Cmd") or [])
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(  # noqa: S603 - the image's own entrypoint
                    argv,
                    env=self.env,
                    preexec_fn=enter,  # noqa: PLW1509 - chroot must happen in the child
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for path in reversed(self.mounts):
            if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode:  # noqa: S603, S607
                subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)  # noqa: S603, S607
        self.mounts.clear()
