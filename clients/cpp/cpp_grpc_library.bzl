"""C++ messages and gRPC stubs for proto_library targets, on rules_proto_grpc's core API.

rules_proto_grpc_cpp's own `cpp_grpc_library`, with the same plugins and outputs, except
that its compile rule builds rules_proto_grpc's fixer and merger, Rust programs that no C++
plugin runs (a Rust toolchain to fetch for nothing); the repository's compile rule
(tools/proto/rules) leaves them out. The messages come from protoc's built-in C++ generator,
and the registered protoc (BUILD.bazel) is protobuf's own, from the release the code links.

The libraries include as `<proto package path>/<file>.pb.h`, e.g. `auth/v1/auth.grpc.pb.h`.
"""

load("@micro_proto_rules//:compile.bzl", "proto_compile_rule")
load("@rules_cc//cc:defs.bzl", "cc_library")
load("@rules_proto_grpc//:defs.bzl", "filter_files")
load("@rules_proto_grpc_cpp//:cpp_grpc_library.bzl", "GRPC_DEPS")

cpp_grpc_compile = proto_compile_rule(
    [
        Label("@rules_proto_grpc_cpp//:proto_plugin"),
        Label("@rules_proto_grpc_cpp//:grpc_plugin"),
    ],
    # grpc_cpp_plugin is built from gRPC's source in the same build.
    plugins_cfg = "exec",
)

def cpp_grpc_library(name, protos, deps = [], **kwargs):
    """A cc_library of the messages and gRPC stubs of `protos`, linking protobuf and gRPC++.

    Args:
      name: target name.
      protos: proto_library targets.
      deps: cpp_grpc_library targets of the protos that `protos` import.
      **kwargs: passed to the cc_library (visibility, ...).
    """
    cpp_grpc_compile(
        name = name + "_pb",
        protos = protos,
    )
    for kind, extensions in [("srcs", ["cc"]), ("hdrs", ["h"])]:
        filter_files(
            name = "%s_pb_%s" % (name, kind),
            target = name + "_pb",
            extensions = extensions,
        )
    cc_library(
        name = name,
        srcs = [name + "_pb_srcs"],
        hdrs = [name + "_pb_hdrs"],
        includes = [name + "_pb"],
        deps = deps + GRPC_DEPS,
        **kwargs
    )
