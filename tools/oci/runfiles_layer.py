"""Writes one image layer (an uncompressed tar) from a manifest of runfiles.

Manifest lines: DEST<TAB>file<TAB>SOURCE, DEST<TAB>empty<TAB> or DEST<TAB>link<TAB>TARGET
(a symbolic link, TARGET relative to DEST's directory). Sources are copied by content
(runfiles trees are symlinks into Bazel's output base, which the image does not have).
The tar depends only on paths and contents: sorted entries, mtime 0, owner root, mode 0755
for executables and directories, 0644 otherwise.

Every .py file gets its byte code beside it (`__pycache__/<name>.<cache tag>.pyc`), so a
container with a read-only root compiles nothing at start. The pycs are PEP 552
unchecked-hash ones: the interpreter loads them without comparing the source's mtime
(which the tar resets to 0) or hash, and they are the same bytes on every build. They are
compiled by the Python running this tool, which must be the image's minor version
(`--cache-tag`, from tools/oci/defs.bzl): the magic number differs between minor releases.

Usage: runfiles_layer.py [--cache-tag TAG] MANIFEST OUT.tar
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import marshal
import os
import sys
import tarfile
from collections.abc import Mapping
from pathlib import PurePosixPath

# PEP 552 flags: hash-based (bit 0), not checked against the source (bit 1 clear).
_UNCHECKED_HASH = (0b01).to_bytes(4, "little")


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


class Link(str):
    """A manifest entry that is a symbolic link to this target."""


def read_manifest(text: str) -> dict[str, str | None]:
    """Destination (relative, normalised) -> source path, a Link, or None for an empty file."""
    entries: dict[str, str | None] = {}
    for line in text.splitlines():
        if not line:
            continue
        dest, kind, src = line.split("\t")
        rel = str(PurePosixPath("/", dest)).lstrip("/")
        if ".." in PurePosixPath(rel).parts:
            raise ValueError(f"destination escapes the image root: {dest!r}")
        if kind == "link":
            target = os.path.normpath(os.path.join(os.path.dirname(rel), src))
            if src.startswith("/") or target.split("/")[0] == "..":
                raise ValueError(f"link target escapes the image root: {dest!r} -> {src!r}")
            entries[rel] = Link(src)
        else:
            entries[rel] = src if kind == "file" else None
    return entries


def byte_code(rel: str, source: bytes) -> tuple[str, bytes] | None:
    """(path, unchecked-hash pyc) for the module at image path `rel`, or None if it does
    not compile (templates and test data shipped as .py)."""
    try:
        code = compile(source, "/" + rel, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    head, tail = os.path.split(rel)
    pyc = f"{head}/__pycache__/{tail[:-3]}.{sys.implementation.cache_tag}.pyc"
    header = importlib.util.MAGIC_NUMBER + _UNCHECKED_HASH + importlib.util.source_hash(source)
    return pyc, header + marshal.dumps(code)


def with_byte_code(entries: dict[str, str | None]) -> dict[str, str | bytes | None]:
    """The entries plus a pyc (as bytes) for each .py among them; pycs already in the
    runfiles (timestamp-based, from a wheel) are dropped: the tar's mtime 0 voids them."""
    out: dict[str, str | bytes | None] = {
        rel: src for rel, src in entries.items() if "/__pycache__/" not in f"/{rel}"
    }
    for rel, src in sorted(entries.items()):
        if rel.endswith(".py") and not isinstance(src, Link):
            source = b""
            if src is not None:
                with open(src, "rb") as f:
                    source = f.read()
            compiled = byte_code(rel, source)
            if compiled is not None:
                out[compiled[0]] = compiled[1]
    return out


def write_layer(entries: Mapping[str, str | bytes | None], out: str) -> None:
    dirs: set[str] = set()
    for rel in entries:
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    clash = dirs & set(entries)
    if clash:
        raise ValueError(f"paths are both files and directories: {sorted(clash)[:5]}")
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for rel in sorted(dirs | set(entries)):
            if rel in dirs:
                tar.addfile(_info(rel + "/", tarfile.DIRTYPE, 0o755))
                continue
            src = entries[rel]
            if isinstance(src, Link):
                tar.addfile(_info(rel, tarfile.SYMTYPE, 0o777, link=str(src)))
                continue
            if src is None or isinstance(src, bytes):
                data = src or b""
                tar.addfile(_info(rel, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
                continue
            st = os.stat(src)  # follows the runfiles symlink to the real file
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            with open(src, "rb") as f:
                tar.addfile(_info(rel, tarfile.REGTYPE, mode, st.st_size), f)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-tag", help="the image Python's, e.g. cpython-314")
    parser.add_argument("manifest")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    if args.cache_tag and args.cache_tag != sys.implementation.cache_tag:
        raise SystemExit(
            f"runfiles_layer: the image runs {args.cache_tag}, this tool runs "
            f"{sys.implementation.cache_tag}; its byte code would be ignored there"
        )
    with open(args.manifest, encoding="utf-8") as f:
        write_layer(with_byte_code(read_manifest(f.read())), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
