"""Python code generation for proto_library targets, on rules_proto_grpc's core API.

rules_proto_grpc's Python language module is not packaged everywhere this workspace builds,
so the three plugins it would define are declared in tools/proto/BUILD.bazel and combined
here. The generated modules import as `<package path>/<file>_pb2`, e.g.
`from user.v1 import user_pb2, user_pb2_grpc`.
"""

load("@pip//:requirements.bzl", "requirement")
load("@rules_proto_grpc//:defs.bzl", "ProtoPluginInfo", "proto_compile_attrs", "proto_compile_impl", "proto_compile_toolchains")
load("@rules_python//python:defs.bzl", "py_library")

python_grpc_compile = rule(
    implementation = proto_compile_impl,
    attrs = dict(
        proto_compile_attrs,
        _plugins = attr.label_list(
            providers = [ProtoPluginInfo],
            default = [
                Label("//tools/proto:python_plugin"),
                Label("//tools/proto:grpc_python_plugin"),
                Label("//tools/proto:mypy_plugin"),
                Label("//tools/proto:mypy_grpc_plugin"),
            ],
        ),
        # Both default to Rust tools that rules_proto_grpc uses for other languages; they
        # are never run for Python, so a stand-in keeps the Rust toolchain out of the build.
        _fixer = attr.label(default = Label("//tools/proto:unused_tool"), cfg = "exec", executable = True),
        _merger = attr.label(default = Label("//tools/proto:unused_tool"), cfg = "exec", executable = True),
    ),
    toolchains = proto_compile_toolchains,
)

def py_grpc_library(name, protos, deps = [], **kwargs):
    """Python messages, gRPC stubs and typed stubs (.pyi) of both for `protos`, as one py_library."""
    python_grpc_compile(
        name = name + "_gen",
        protos = protos,
    )
    py_library(
        name = name,
        srcs = [":" + name + "_gen"],
        data = [":" + name + "_gen"],
        imports = [name + "_gen"],
        deps = deps + [
            requirement("protobuf"),
            requirement("grpcio"),
        ],
        **kwargs
    )
