"""A base image repo built from the installed Debian packages (offline `oci.pull`).

The rootfs is the dependency closure of `packages` copied from this system (see
debian_rootfs.py). Bazel caches the repo; it is rebuilt when dpkg's status changes.
"""

# python3 and what rules_python's launcher needs to start it (sh, which, grep, env), plus
# the C++ runtime that grpcio's extension links.
DEFAULT_PACKAGES = [
    "base-files",
    "coreutils",
    "dash",
    "debianutils",
    "grep",
    "libgcc-s1",
    "libstdc++6",
    "netbase",
    "python3",
]

_ARCH = {"amd64": "amd64", "x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

_BUILD = """\
load("@rules_oci//oci:defs.bzl", "oci_image")

# Built offline from the Debian packages installed where Bazel runs (stand-in for
# pulling {image}). Packages: {packages}.
oci_image(
    name = "{name}",
    architecture = "{arch}",
    env = {{
        "LANG": "C.UTF-8",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }},
    labels = {{"org.opencontainers.image.base.name": "{image}"}},
    tars = ["rootfs.tar"],
    visibility = ["//visibility:public"],
)
"""

def _impl(rctx):
    if rctx.os.name != "linux":
        fail("the offline rules_oci stand-in builds base images from Debian packages: Linux only")
    python = rctx.which("python3")
    if not python:
        fail("python3 not found on PATH (needed to write the base image's rootfs)")
    rctx.watch("/var/lib/dpkg/status")
    script = rctx.path(Label("//oci/private:debian_rootfs.py"))
    packages = rctx.attr.packages or DEFAULT_PACKAGES
    result = rctx.execute([python, script, "rootfs.tar"] + packages, timeout = 600)
    if result.return_code != 0:
        fail("debian_rootfs.py failed:\n" + result.stdout + result.stderr)
    rctx.file("BUILD.bazel", _BUILD.format(
        name = rctx.attr.name.split("~")[-1].split("+")[-1],
        arch = _ARCH.get(rctx.os.arch, rctx.os.arch),
        image = rctx.attr.image or "debian",
        packages = " ".join(result.stdout.strip().split("\n")),
    ))

debian_base_image = repository_rule(
    implementation = _impl,
    attrs = {
        "image": attr.string(),
        "packages": attr.string_list(),
    },
)
