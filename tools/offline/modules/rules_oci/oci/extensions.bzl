"""Offline stand-in for rules_oci's `oci` extension.

`oci.pull` cannot download here, so each pull becomes a base image per platform built
from this Debian release's packages (private/debian_base.bzl): the same repo names and
target as rules_oci's pull, images carrying the Python that builds and tests the code.
`oci.toolchains` is accepted and ignored: the stand-in needs no crane, jq or bsdtar.
"""

load("//oci/private:debian_base.bzl", "PLATFORMS", "base_by_cpu", "debian_base_image")

_pull = tag_class(attrs = {
    "name": attr.string(mandatory = True),
    "image": attr.string(),
    "digest": attr.string(),
    "tag": attr.string(),
    "platforms": attr.string_list(),
    # Stand-in only: the packages whose dependency closure forms the image.
    "debian_packages": attr.string_list(),
})

_toolchains = tag_class(attrs = {
    "crane_version": attr.string(),
    "zot_version": attr.string(),
    "regctl_version": attr.string(),
})

def _oci_impl(mctx):
    for mod in mctx.modules:
        for pull in mod.tags.pull:
            by_cpu = {}
            for platform in pull.platforms or ["linux/amd64"]:
                repo = pull.name + "_" + platform.replace("/", "_")
                debian_base_image(
                    name = repo,
                    image = pull.image,
                    packages = pull.debian_packages or None,
                    platform = platform,
                )
                by_cpu[PLATFORMS[platform].cpu] = repo
            base_by_cpu(name = pull.name, short_name = pull.name, by_cpu = by_cpu)

oci = module_extension(
    implementation = _oci_impl,
    tag_classes = {"pull": _pull, "toolchains": _toolchains},
)
