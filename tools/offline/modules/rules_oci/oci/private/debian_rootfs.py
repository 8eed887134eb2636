"""Writes a container root filesystem (an uncompressed tar) from this Debian system's packages.

The stand-in for pulling `python:3.14-slim`: instead of downloading an image, it takes the
dependency closure of a few packages (python3 and the tools its launcher needs), so the
image carries the Python that built and tested the code:
- for this machine's own architecture, from the installed files (dpkg's database);
- for another one (`--arch arm64` on x86_64), from the same Debian release's packages of
  that architecture: apt resolves and downloads the closure as if into an empty system
  (the root lists that architecture, tools/debian_root/root.sh), and dpkg-deb unpacks it.
  No maintainer script runs, so the links they would make are copied from this system.
The standard library gets byte code compiled here (PEP 552 unchecked-hash pycs: valid
whatever the files' mtimes, which the tar sets to 0), so a read-only container compiles
nothing of it at start. The tar is deterministic for a given set of files: sorted
entries, mtime 0, owner root.

Usage: debian_rootfs.py [--arch ARCH] OUT.tar PACKAGE...
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import marshal
import os
import re
import subprocess
import sys
import tarfile
import tempfile
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


def _links_from_here(paths: set[str], root: Path) -> None:
    """Links made by maintainer scripts (/usr/bin/sh, update-alternatives) rather than
    shipped: this system's own, where their target is in the image."""
    for directory in ("usr/bin", "usr/sbin", "etc/alternatives"):
        for entry in sorted(Path("/", directory).iterdir()):
            rel = str(entry).lstrip("/")
            if not entry.is_symlink() or rel in paths:
                continue
            if os.path.realpath(entry).lstrip("/") in paths:
                paths.add(rel)
                if root != Path("/"):
                    _copy_link(root, rel, os.readlink(entry))


def _copy_link(root: Path, rel: str, target: str) -> None:
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_symlink():
        dest.symlink_to(target)


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
    _links_from_here(paths, Path("/"))
    return paths


def foreign(arch: str, seeds: list[str], work: Path) -> tuple[Path, list[str], set[str]]:
    """Unpacks the closure of `seeds` for `arch` under work/tree: (tree, packages, paths)."""
    debs, tree = work / "debs", work / "tree"
    (debs / "partial").mkdir(parents=True)
    status = work / "status"
    status.write_text("")
    # The Debian root's own apt and dpkg, with fixed arguments.
    subprocess.run(  # noqa: S603
        [  # noqa: S607
            "apt-get",
            "-q",
            "-y",
            "--download-only",
            "install",
            f"-oAPT::Architecture={arch}",
            f"-oAPT::Architectures::={arch}",
            f"-oDir::State::status={status}",
            f"-oDir::Cache::archives={debs}",
            "-oDebug::NoLocking=1",
            "-oAPT::Install-Recommends=0",
            *seeds,
        ],
        check=True,
        stdout=sys.stderr,
    )
    packages = []
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)  # noqa: S603, S607
        packages.append(deb.name.split("_")[0])
    paths = set()
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            if not _DROP.search(rel):
                paths.add(rel)
    _links_from_here(paths, tree)
    return tree, packages, paths


def byte_code(root: Path, paths: set[str]) -> dict[str, bytes]:
    """Unchecked-hash pycs (PEP 552) of the standard library, by their path in the image.

    Compiled by this Python, which must be the image's minor version (same Debian release).
    Debian's own pycs record source mtimes that the tar resets, so they are replaced.
    """
    tag = sys.implementation.cache_tag
    stdlib = f"usr/lib/python{sys.version_info.major}.{sys.version_info.minor}/"
    if not any(p.startswith(stdlib) for p in paths):
        raise SystemExit(f"debian_rootfs: the image has no {stdlib}; build it with its own Python")
    flags = (0b01).to_bytes(4, "little")  # hash-based, not checked against the source
    out: dict[str, bytes] = {}
    for rel in sorted(p for p in paths if p.startswith(stdlib) and p.endswith(".py")):
        source = (root / rel).read_bytes()
        try:
            code = compile(source, "/" + rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            continue  # test data and templates that are not meant to be imported
        head, tail = os.path.split(rel)
        pyc = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source)
        out[f"{head}/__pycache__/{tail[:-3]}.{tag}.pyc"] = pyc + marshal.dumps(code)
    return out


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


def write(out: str, paths: set[str], root: Path, generated: dict[str, bytes]) -> None:
    # Mount points and the writable places a container expects, plus every parent.
    dirs = {"tmp", "proc", "dev", "sys", "etc", "home/nonroot", "root", "var/tmp"}
    for rel in paths | dirs:
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    # usr-merge links, as this system has them (same release for every architecture).
    top_links = {
        name: os.readlink("/" + name)
        for name in ("bin", "lib", "lib64", "sbin")
        if os.path.islink("/" + name)
    }
    # Debian's pycs are replaced by `generated`; /usr/local/bin/python3 is where the
    # python:3.14-slim image online has it, which the image Python toolchain names.
    paths = {p for p in paths if "/__pycache__/" not in p}
    links = {"usr/local/bin/python3": "/usr/bin/python3"}
    generated = {"etc/passwd": USERS_FILE.encode(), "etc/group": GROUPS_FILE.encode(), **generated}
    for rel in list(generated) + list(links):
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    entries = sorted(dirs | paths | set(top_links) | set(generated) | set(links))
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for rel in entries:
            full = str(root / rel)
            if rel in generated:
                data = generated[rel]
                tar.addfile(_info(rel, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
            elif rel in links:
                tar.addfile(_info(rel, tarfile.SYMTYPE, 0o777, link=links[rel]))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", help="Debian architecture of the image (default: this one's)")
    parser.add_argument("out")
    parser.add_argument("packages", nargs="+")
    args = parser.parse_args(argv[1:])
    here = subprocess.run(
        ["dpkg", "--print-architecture"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        if args.arch in (None, here):
            root, packages = Path("/"), closure(args.packages)
            paths = collect(packages)
        else:
            root, packages, paths = foreign(args.arch, args.packages, Path(tmp))
        write(args.out, paths, root, byte_code(root, paths))
    print("\n".join(packages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
