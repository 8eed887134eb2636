"""Stand-in for protobuf's `//bazel/toolchains:proto_toolchain.bzl`, on Debian's rules_proto 6.0.0.

Same call as upstream's macro: the rule `name` plus a toolchain `name + "_toolchain"` of the
proto toolchain type. rules_proto 6.0.0's own public macro names that type relative to the
caller (a bug, fixed in 7.x), so its rule is used directly with the type spelled in full.
"""

# buildifier: disable=bzl-visibility
load("@rules_proto//proto/private/rules:proto_toolchain_rule.bzl", _proto_toolchain_rule = "proto_toolchain")

def proto_toolchain(*, name, proto_compiler, exec_compatible_with = []):
    _proto_toolchain_rule(name = name, proto_compiler = proto_compiler)
    native.toolchain(
        name = name + "_toolchain",
        toolchain_type = Label("@rules_proto//proto:toolchain_type"),
        exec_compatible_with = exec_compatible_with,
        target_compatible_with = [],
        toolchain = name,
    )
