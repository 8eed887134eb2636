"""C++ messages and gRPC stubs for proto_library targets, on rules_proto_grpc's core API.

Same call as rules_proto_grpc_cpp's `cpp_grpc_library`, with three differences that keep it
working in both worlds (tools/offline/README.md):

- The C++ messages come from protobuf's own C++ generator built as a protoc plugin from the
  protobuf the code links (`:protoc-gen-cpp`), as protobuf's `cc_proto_library` does.
  C++ generated code compiles only against the exact runtime release that generated it, and
  the registered protoc (grpcio-tools', tools/proto) is chosen for the Python runtime; it
  only drives the plugin. The gRPC stubs use rules_proto_grpc_cpp's `grpc_plugin`, whose
  grpc_cpp_plugin is built against that same protobuf.
- rules_proto_grpc's fixer and merger are Rust binaries (a Rust toolchain to fetch) that no
  C++ plugin runs; a stand-in takes their place, as for Python (tools/proto/defs.bzl).
- `tags` and the other common attributes reach every target the macro makes, so
  `tags = ["manual"]` keeps the whole C++ build out of `//...`.

The libraries include as `<proto package path>/<file>.pb.h`, e.g. `auth/v1/auth.grpc.pb.h`.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")
load("@rules_proto_grpc//:defs.bzl", "bazel_build_rule_common_attrs", "filter_files")
load("@rules_proto_grpc_cpp//:cpp_grpc_library.bzl", "GRPC_DEPS")
load("//tools/proto:compile.bzl", "proto_compile_rule")

cpp_grpc_compile = proto_compile_rule(
    [
        Label("//tools/proto/cpp:cpp_plugin"),
        Label("@rules_proto_grpc_cpp//:grpc_plugin"),
    ],
    plugins_cfg = "exec",
)

def cpp_grpc_library(name, protos, deps = [], **kwargs):
    """A cc_library of the messages and gRPC stubs of `protos`, linking protobuf and gRPC++.

    Args:
      name: target name.
      protos: proto_library targets.
      deps: more cc_library targets.
      **kwargs: common attributes (tags, visibility, ...), given to every target made here.
    """
    common = {k: v for k, v in kwargs.items() if k in bazel_build_rule_common_attrs}
    internal = dict(common, visibility = ["//visibility:private"])
    cpp_grpc_compile(
        name = name + "_pb",
        protos = protos,
        **internal
    )
    for kind, extensions in [("srcs", ["cc"]), ("hdrs", ["h"])]:
        filter_files(
            name = "%s_pb_%s" % (name, kind),
            target = name + "_pb",
            extensions = extensions,
            **internal
        )
    cc_library(
        name = name,
        srcs = [name + "_pb_srcs"],
        hdrs = [name + "_pb_hdrs"],
        includes = [name + "_pb"],
        deps = GRPC_DEPS + deps,
        **kwargs
    )
