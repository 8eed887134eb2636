"""Offline only: `@pip`, one hub whose packages follow the target CPU.

Debian's rules_python 0.22.1 installs wheels for the machine that builds, so
tools/offline/MODULE.bazel parses the lock once per CPU: the host's hub, and a
`download_only` hub of manylinux wheels for each CPU an image is built for; the hub of the
host's own CPU is left unused. This
extension writes the `@pip` that BUILD files load (`@pip//:requirements.bzl`): each
package an alias that selects the hub of the target's CPU, the way rules_python 2.x's
own hub selects per platform online (MODULE.bazel). Exec tools (protoc, lint) are built
for the host and keep the host's wheels.

The extension lives in the root module so that its repo sees the per-CPU hubs that
tools/offline/MODULE.bazel imports with use_repo.
"""

_BZL = '''\
"""`requirement()` of the per-CPU hub (tools/offline/pip_hub.bzl)."""

def _clean(name):
    return name.replace("-", "_").replace(".", "_").lower()

def requirement(name):
    return str(Label("//:" + _clean(name) + "_pkg"))
'''

def _clean(name):
    return name.replace("-", "_").replace(".", "_").lower()

def _packages(lock):
    names = []
    for line in lock.splitlines():
        if line and line[0].isalnum() and "==" in line:
            names.append(_clean(line.split("==")[0].split("[")[0].strip()))
    return names

def _hub_impl(rctx):
    rctx.file("requirements.bzl", _BZL)
    cases = "".join([
        '        "@platforms//cpu:%s": "@%s//:{name}_pkg",\n' % (cpu, hub)
        for cpu, hub in sorted(rctx.attr.by_cpu.items())
    ])
    build = ['package(default_visibility = ["//visibility:public"])', 'exports_files(["requirements.bzl"])']
    for name in _packages(rctx.read(rctx.attr.requirements_lock)):
        build.append(
            ("alias(\n    name = \"{name}_pkg\",\n    actual = select({{\n" + cases +
             "        \"//conditions:default\": \"@%s//:{name}_pkg\",\n    }}),\n)" % rctx.attr.default)
                .format(name = name),
        )
    rctx.file("BUILD.bazel", "\n\n".join(build) + "\n")

_cpu_hub = repository_rule(
    implementation = _hub_impl,
    attrs = {
        "by_cpu": attr.string_dict(doc = "target CPU (@platforms//cpu) -> hub for it"),
        "default": attr.string(mandatory = True, doc = "the host's hub"),
        "requirements_lock": attr.label(mandatory = True),
    },
)

_hub = tag_class(attrs = {
    "name": attr.string(mandatory = True),
    "by_cpu": attr.string_dict(),
    "default": attr.string(mandatory = True),
    "requirements_lock": attr.label(mandatory = True),
})

# rctx.os.arch spellings -> @platforms//cpu names.
_HOST_CPU = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}

def _impl(mctx):
    host_cpu = _HOST_CPU.get(mctx.os.arch, mctx.os.arch)
    for mod in mctx.modules:
        for hub in mod.tags.hub:
            _cpu_hub(
                name = hub.name,
                # The host's own CPU keeps the host's hub (wheels built here if need be).
                by_cpu = {cpu: h for cpu, h in hub.by_cpu.items() if cpu != host_cpu},
                default = hub.default,
                requirements_lock = hub.requirements_lock,
            )

pip_by_cpu = module_extension(implementation = _impl, tag_classes = {"hub": _hub})
