"""Each service's image index holds a linux/amd64 and a linux/arm64 image, each all its own CPU.

Read from the OCI layouts Bazel built, whatever the host: the interpreter the image runs
(`/usr/local/bin/python3`, followed through its links) and every native file of the
runfiles (wheels' extensions included) must be ELF for the variant's machine. A build
that mixed the host's wheels or interpreter into an image (what a macOS or an aarch64
host did before the platform transition) fails here on any machine.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs import inventory
from tools.oci.layout import blob_path, manifests

_RUNFILES = Path(os.environ.get("TEST_SRCDIR", "."), "_main")
SERVICES = inventory.load().names()
# ELF e_machine by OCI architecture (System V ABI).
MACHINE = {"amd64": 62, "arm64": 183}
INTERPRETER = "usr/local/bin/python3"


@dataclass(frozen=True)
class Entry:
    link: str | None  # target of a symbolic link, else None
    head: bytes  # first 20 bytes of a regular file
    layer: int


def _layout(svc: str) -> Path:
    return _RUNFILES / "services" / svc / "image"


def _filesystem(svc: str, manifest: dict) -> dict[str, Entry]:
    """Path -> entry of the image's filesystem, layers applied in order (no whiteouts here)."""
    files: dict[str, Entry] = {}
    for i, layer in enumerate(manifest["layers"]):
        with (
            gzip.open(blob_path(_layout(svc), layer["digest"])) as raw,
            tarfile.open(fileobj=raw) as tar,
        ):
            for member in tar:
                name = posixpath.normpath(member.name.removeprefix("./").lstrip("/"))
                if member.issym():
                    files[name] = Entry(member.linkname, b"", i)
                elif member.isfile():
                    f = tar.extractfile(member)
                    files[name] = Entry(None, f.read(20) if f else b"", i)
    return files


def _resolve(files: dict[str, Entry], path: str) -> str:
    """`path` with every link on the way followed (usr-merge's /bin -> usr/bin too)."""
    todo, done, hops = path.split("/"), "", 0
    while todo:
        part = todo.pop(0)
        current = posixpath.join(done, part) if done else part
        entry = files.get(current)
        if entry is not None and entry.link is not None:
            hops += 1
            assert hops < 40, f"link loop at {current}"
            base = "" if entry.link.startswith("/") else done
            target = posixpath.normpath(posixpath.join(base, entry.link.lstrip("/")))
            todo, done = [*target.split("/"), *todo], ""
            continue
        done = current
    return done


def _machine(head: bytes) -> int | None:
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module", params=SERVICES)
def variants(request: pytest.FixtureRequest) -> tuple[str, dict[str, dict]]:
    return request.param, manifests(_layout(request.param))


def test_the_index_holds_both_linux_variants(variants: tuple[str, dict[str, dict]]) -> None:
    svc, manifests = variants
    assert sorted(manifests) == ["linux/amd64", "linux/arm64"], svc


@pytest.mark.parametrize("arch", sorted(MACHINE))
def test_interpreter_and_native_code_are_the_variants(
    variants: tuple[str, dict[str, dict]], arch: str
) -> None:
    svc, manifests = variants
    files = _filesystem(svc, manifests[f"linux/{arch}"])
    interpreter = _resolve(files, INTERPRETER)
    assert interpreter in files, f"{svc}/{arch}: {INTERPRETER} leads to {interpreter}, not a file"
    assert _machine(files[interpreter].head) == MACHINE[arch], f"{svc}/{arch}: {interpreter}"

    # Ours: everything above the base layers (the runfiles: wheels, launcher, own code).
    ours = {p: e for p, e in files.items() if p.startswith("app/") and e.link is None}
    native = {p: _machine(e.head) for p, e in ours.items() if _machine(e.head) is not None}
    assert any("/grpc/_cython/cygrpc" in p for p in native), f"{svc}/{arch}: no grpcio extension"
    wrong = sorted(p for p, machine in native.items() if machine != MACHINE[arch])
    assert not wrong, f"{svc}/{arch}: native files of another machine: {wrong[:5]}"
    mach_o = (b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xca\xfe\xba\xbe")
    assert not [p for p, e in ours.items() if e.head[:4] in mach_o], f"{svc}/{arch}: macOS files"
