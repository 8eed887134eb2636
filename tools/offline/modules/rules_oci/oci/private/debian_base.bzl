"""Base image repos built from Debian packages (offline `oci.pull`).

One repo per platform, named as rules_oci names them (`<name>_linux_amd64`,
`<name>_linux_arm64_v8`): the dependency closure of `packages`, copied from this system
for its own architecture and unpacked from the same release's packages for another (see
debian_rootfs.py). `<name>` itself selects one by the target CPU, as rules_oci's does.
Bazel caches the repos; they are rebuilt when dpkg's status changes.
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

# OCI platform (as oci.pull's `platforms` spell it) -> Debian architecture, OCI variant, CPU.
PLATFORMS = {
    "linux/amd64": struct(debian = "amd64", variant = "", cpu = "x86_64"),
    "linux/arm64": struct(debian = "arm64", variant = "v8", cpu = "aarch64"),
    "linux/arm64/v8": struct(debian = "arm64", variant = "v8", cpu = "aarch64"),
}

_BUILD = """\
load("@rules_oci//oci:defs.bzl", "oci_image")

# Built offline from the Debian packages installed where Bazel runs (stand-in for
# pulling {image}). Packages: {packages}.
oci_image(
    name = "{name}",
    architecture = "{arch}",
    variant = "{variant}",
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
    rctx.watch("/var/lib/dpkg/arch")
    script = rctx.path(Label("//oci/private:debian_rootfs.py"))
    packages = rctx.attr.packages or DEFAULT_PACKAGES
    platform = PLATFORMS[rctx.attr.platform]
    result = rctx.execute(
        [python, script, "--arch", platform.debian, "rootfs.tar"] + packages,
        timeout = 900,
    )
    if result.return_code != 0:
        fail("debian_rootfs.py failed:\n" + result.stdout + result.stderr)
    rctx.file("BUILD.bazel", _BUILD.format(
        name = "image",
        arch = platform.debian,
        variant = platform.variant,
        image = rctx.attr.image or "debian",
        packages = " ".join(result.stdout.strip().split("\n")),
    ))

debian_base_image = repository_rule(
    implementation = _impl,
    attrs = {
        "image": attr.string(),
        "packages": attr.string_list(),
        "platform": attr.string(mandatory = True, values = PLATFORMS.keys()),
    },
)

def _select_impl(rctx):
    cases = "".join([
        '        "@platforms//cpu:%s": "@%s//:image",\n' % (cpu, repo)
        for cpu, repo in sorted(rctx.attr.by_cpu.items())
    ])
    rctx.file("BUILD.bazel", """\
alias(
    name = "{name}",
    actual = select({{
{cases}    }}, no_match_error = "{name}: no base image for this target CPU; build for a platform of //tools/platforms"),
    visibility = ["//visibility:public"],
)
""".format(name = rctx.attr.short_name, cases = cases))

base_by_cpu = repository_rule(
    implementation = _select_impl,
    attrs = {
        "by_cpu": attr.string_dict(mandatory = True),
        "short_name": attr.string(mandatory = True),
    },
)
