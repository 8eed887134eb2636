"""Python code generation for proto_library targets, on rules_proto_grpc's core API.

rules_proto_grpc's Python language module is not packaged everywhere this workspace builds,
so the plugins it would define (and mypy-protobuf's, for typed stubs) are declared in
tools/proto/BUILD.bazel and combined here. The generated modules import as
`<package path>/<file>_pb2`, e.g. `from user.v1 import user_pb2, user_pb2_grpc`.
"""

load("@micro_proto_rules//:compile.bzl", "proto_compile_rule")
load("@pip//:requirements.bzl", "requirement")
load("@rules_proto//proto:defs.bzl", "proto_library")
load("@rules_python//python:defs.bzl", "py_library")
load("//tools/lint:defs.bzl", "lint_test")

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
            # google.api's generated modules (annotations_pb2, http_pb2), which the
            # generated code imports for the protos' HTTP mapping.
            requirement("googleapis-common-protos"),
        ],
        **kwargs
    )

def proto_package(name, deps = []):
    """One API package below protos/: its proto_library, Python library and lint check.

    In protos/NAME/vN/: `NAME_proto` from NAME.proto, `NAME_py_grpc` (its Python messages
    and gRPC stubs) and the package's lint_test. Imports resolve from protos/, so NAME.proto
    is `NAME/vN/NAME.proto` to every importer and generator. Every package may map its
    public RPCs to HTTP (google.api.http, AIP-127), so google/api's annotations are a
    dependency of each.

    Args:
      name: the package's name, also its .proto file's.
      deps: other proto_library targets NAME.proto imports.
    """
    proto_library(
        name = name + "_proto",
        srcs = [name + ".proto"],
        strip_import_prefix = "/protos",
        deps = deps + [Label("@googleapis//google/api:annotations_proto")],
        visibility = ["//visibility:public"],
    )
    py_grpc_library(
        name = name + "_py_grpc",
        protos = [":" + name + "_proto"],
        visibility = ["//visibility:public"],
    )
    lint_test()
