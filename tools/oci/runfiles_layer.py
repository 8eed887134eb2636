"""Writes one image layer (an uncompressed tar) from a manifest of runfiles.

Manifest lines: DEST<TAB>file<TAB>SOURCE or DEST<TAB>empty<TAB>. Sources are copied by
content (runfiles trees are symlinks into Bazel's output base, which the image does not
have). The tar depends only on paths and contents: sorted entries, mtime 0, owner root,
mode 0755 for executables and directories, 0644 otherwise.

Usage: runfiles_layer.py MANIFEST OUT.tar
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import PurePosixPath


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_manifest(text: str) -> dict[str, str | None]:
    """Destination (relative, normalised) -> source path, or None for an empty file."""
    entries: dict[str, str | None] = {}
    for line in text.splitlines():
        if not line:
            continue
        dest, kind, src = line.split("\t")
        rel = str(PurePosixPath("/", dest)).lstrip("/")
        if ".." in PurePosixPath(rel).parts:
            raise ValueError(f"destination escapes the image root: {dest!r}")
        entries[rel] = src if kind == "file" else None
    return entries


def write_layer(entries: dict[str, str | None], out: str) -> None:
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
            if src is None:
                tar.addfile(_info(rel, tarfile.REGTYPE, 0o644), io.BytesIO(b""))
                continue
            st = os.stat(src)  # follows the runfiles symlink to the real file
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            with open(src, "rb") as f:
                tar.addfile(_info(rel, tarfile.REGTYPE, mode, st.st_size), f)


def main(argv: list[str]) -> int:
    manifest, out = argv
    with open(manifest, encoding="utf-8") as f:
        write_layer(read_manifest(f.read()), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
