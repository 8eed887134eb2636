"""Writes a container root filesystem (an uncompressed tar) from this Debian system's files.

The stand-in for pulling `python:3.14-slim`: instead of downloading an image, it takes the
dependency closure of a few packages (python3 and the tools its launcher needs) from the
dpkg database of the system it runs on, so the image carries exactly the Python that
built and tested the code. The tar is deterministic for a given set of installed files:
sorted entries, mtime 0, owner root.

Usage: debian_rootfs.py OUT.tar PACKAGE...
"""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from pathlib import Path

DPKG = Path("/var/lib/dpkg")

# Documentation and translations are dead weight in an image; copyright files stay.
_DROP = re.compile(
    r"^usr/share/(man|info|locale|lintian|bug|linda|bash-completion|zsh|fish)/"
    r"|^usr/share/doc/(?!.*/copyright$)"
)

# The image's users: root, and `nonroot` (65532) that the services run as.
USERS_FILE = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n"
)
GROUPS_FILE = "root:x:0:\nnonroot:x:65532:\n"


def _installed() -> dict[str, dict[str, str]]:
    """Installed packages from dpkg's status file, by name (architecture dropped)."""
    packages: dict[str, dict[str, str]] = {}
    for stanza in (DPKG / "status").read_text().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages[fields["Package"]] = fields
    return packages


def closure(seeds: list[str]) -> list[str]:
    """Seeds plus everything they (pre-)depend on, resolved against what is installed."""
    installed = _installed()
    provides: dict[str, str] = {}
    for name, fields in sorted(installed.items()):
        for item in fields.get("Provides", "").split(","):
            virtual = item.split("(")[0].strip()
            if virtual:
                provides.setdefault(virtual, name)
    wanted: set[str] = set()
    todo = list(seeds)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in installed:
            raise SystemExit(f"debian_rootfs: package {name!r} is not installed")
        wanted.add(name)
        fields = installed[name]
        deps = ",".join(filter(None, [fields.get("Pre-Depends"), fields.get("Depends")]))
        for clause in deps.split(","):
            # An alternative is satisfied by its first member that is installed here.
            for alt in clause.split("|"):
                dep = alt.split("(")[0].split(":")[0].strip()
                if not dep:
                    continue
                real = dep if dep in installed else provides.get(dep)
                if real:
                    todo.append(real)
                    break
    return sorted(wanted)


def _list_file(name: str) -> Path:
    for candidate in (
        DPKG / "info" / f"{name}.list",
        *sorted((DPKG / "info").glob(f"{name}:*.list")),
    ):
        if candidate.exists():
            return candidate
    raise SystemExit(f"debian_rootfs: no file list for {name}")


def _canonical(path: str) -> str | None:
    """The path with its directory part resolved (usr-merge: /lib/x -> usr/lib/x)."""
    if not os.path.lexists(path):
        return None
    parent = os.path.realpath(os.path.dirname(path))
    return os.path.join(parent, os.path.basename(path)).lstrip("/")


def collect(packages: list[str]) -> set[str]:
    paths: set[str] = set()
    for name in packages:
        for line in _list_file(name).read_text().splitlines():
            rel = _canonical(line)
            # Directories come from their contents: an empty one (after dropping docs)
            # has no reason to be in the image.
            if (
                rel
                and not _DROP.search(rel)
                and (os.path.islink("/" + rel) or not os.path.isdir("/" + rel))
            ):
                paths.add(rel)
    # Byte code Debian compiles at install time: not in the file lists, but it spares every
    # start of a read-only container from compiling the standard library again.
    for rel in [p for p in paths if p.endswith(".py")]:
        head, tail = os.path.split(rel)
        for pyc in Path("/", head, "__pycache__").glob(tail[:-3] + ".cpython-*.pyc"):
            paths.add(str(pyc).lstrip("/"))
    # Links made by maintainer scripts (/usr/bin/sh, update-alternatives) rather than
    # shipped: keep those whose target is in the image.
    for directory in ("usr/bin", "usr/sbin", "etc/alternatives"):
        for entry in sorted(Path("/", directory).iterdir()):
            rel = str(entry).lstrip("/")
            if entry.is_symlink() and os.path.realpath(entry).lstrip("/") in paths:
                paths.add(rel)
    return paths


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write(out: str, paths: set[str]) -> None:
    # Mount points and the writable places a container expects, plus every parent.
    dirs = {"tmp", "proc", "dev", "sys", "etc", "home/nonroot", "root", "var/tmp"}
    for rel in paths | dirs:
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    top_links = {
        name: os.readlink("/" + name)
        for name in ("bin", "lib", "lib64", "sbin")
        if os.path.islink("/" + name)
    }
    generated = {"etc/passwd": USERS_FILE, "etc/group": GROUPS_FILE}
    entries = sorted(dirs | paths | set(top_links) | set(generated))
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for rel in entries:
            full = "/" + rel
            if rel in generated:
                data = generated[rel].encode()
                tar.addfile(_info(rel, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
            elif rel in top_links:
                tar.addfile(_info(rel, tarfile.SYMTYPE, 0o777, link=top_links[rel]))
            elif rel in dirs and not os.path.islink(full):
                mode = {"tmp": 0o1777, "var/tmp": 0o1777, "root": 0o700}.get(rel, 0o755)
                owner = 65532 if rel == "home/nonroot" else 0
                info = _info(rel + "/", tarfile.DIRTYPE, mode)
                info.uid = info.gid = owner
                tar.addfile(info)
            elif os.path.islink(full):
                tar.addfile(_info(rel, tarfile.SYMTYPE, 0o777, link=os.readlink(full)))
            elif os.path.isfile(full):
                st = os.stat(full)
                with open(full, "rb") as f:
                    tar.addfile(_info(rel, tarfile.REGTYPE, st.st_mode & 0o7777, st.st_size), f)


def main(argv: list[str]) -> int:
    out, seeds = argv[1], argv[2:]
    packages = closure(seeds)
    write(out, collect(packages))
    print("\n".join(packages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
