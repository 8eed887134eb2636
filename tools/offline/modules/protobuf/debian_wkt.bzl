"""A repository of the well-known types' .proto files that Debian's libprotobuf-dev installs."""

_INCLUDE = "/usr/include/google/protobuf"

def _debian_wkt_impl(rctx):
    rules = []
    for entry in rctx.path(_INCLUDE).readdir():
        if not entry.basename.endswith(".proto"):
            continue
        rctx.symlink(entry, "google/protobuf/" + entry.basename)
        rules.append('proto_library(name = "%s_proto", srcs = ["google/protobuf/%s"])\n' % (
            entry.basename.removesuffix(".proto"),
            entry.basename,
        ))
    if not rules:
        fail("debian_wkt: no .proto files in %s (is libprotobuf-dev installed?)" % _INCLUDE)
    rctx.file(
        "BUILD.bazel",
        'load("@rules_proto//proto:defs.bzl", "proto_library")\n\n' +
        'package(default_visibility = ["//visibility:public"])\n\n' + "".join(sorted(rules)),
    )

debian_wkt = repository_rule(implementation = _debian_wkt_impl)
