"""Python code generation for proto_library targets, on rules_proto_grpc's core API.

rules_proto_grpc's Python language module is not packaged everywhere this workspace builds,
so the plugins it would define (and mypy-protobuf's, for typed stubs) are declared in
tools/proto/BUILD.bazel and combined here. The generated modules import as
`<package path>/<file>_pb2`, e.g. `from user.v1 import user_pb2, user_pb2_grpc`.
"""

load("@micro_proto_rules//:compile.bzl", "proto_compile_rule")
load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_library")

python_grpc_compile = proto_compile_rule([
    Label("//tools/proto:python_plugin"),
    Label("//tools/proto:grpc_python_plugin"),
    Label("//tools/proto:mypy_plugin"),
    Label("//tools/proto:mypy_grpc_plugin"),
])

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
