"""py_service: everything a service of services/inventory.bzl builds, from one call.

    py_service(
        name = "usersvc",
        deps = [requirement("argon2-cffi")],
    )
    lint_test()

in services/usersvc/BUILD.bazel makes these targets in that package:

  usersvc_lib    py_library: every *.py except main.py and tests/, with migrations/*.sql
                 and migrations/*.py as data (libs/platform/migrations.py reads them); deps:
                 //libs/platform, the service's own protos (//protos/<proto>/v1, from the
                 inventory), asyncpg, grpcio, protobuf, and `deps`. Visible to its own
                 package and to the harnesses that run services in-process (tests/,
                 tools/oci/tests/): another service depending on it fails to build, so
                 "services never import each other" is the build's rule, not a convention.
  usersvc        py_binary: main.py.
  image          oci_image of the binary (py_service_image, tools/oci/defs.bzl), exposing
                 and setting GRPC_PORT to the inventory's port.
  image_load     oci_load, tag usersvc:dev (`tools/bazel run //services/usersvc:image_load`).
  image_tarball  the file image_load writes, for tools/k3d/k3d.sh and the image tests.
  usersvc_test   py_pytest_test of tests/*.py; deps: the library, //libs/platform/testing
                 and `test_deps`.
  typecheck_test mypy over the package's *.py, tests included (typecheck_test,
                 tools/lint/defs.bzl), with the binary's and the tests' deps.

lint_test() stays a call of its own in every package, services included.
"""

load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_binary", "py_library")
load("//services:inventory.bzl", "SERVICES")
load("//tools/lint:defs.bzl", "typecheck_test")
load("//tools/oci:defs.bzl", "py_service_image")
load("//tools/pytest:defs.bzl", "py_pytest_test")

# Who may depend on a service's library besides the service itself: the system tests and
# the image tests, which run services in-process; never another service.
LIBRARY_VISIBILITY = [
    "//tests:__subpackages__",
    "//tools/oci/tests:__subpackages__",
]

def py_service(name, deps = [], test_deps = [], test_data = [], **test_kwargs):
    """The library, binary, image, image load and tests of the service `name`.

    Args:
      name: the service, as services/inventory.bzl names it (and its directory).
      deps: what its code needs beyond the platform, its own protos and the database and
        gRPC libraries: other services' protos, third-party packages.
      test_deps: what its tests need beyond the library and //libs/platform/testing.
      test_data: files its tests read.
      **test_kwargs: more attributes of the test (size, shard_count, tags, ...).
    """
    if name not in SERVICES:
        fail("%s is not in services/inventory.bzl; add it there first (or use tools/bazel run //tools/new_service -- NAME)" % name)
    facts = SERVICES[name]
    own_protos = "//protos/%s/v1:%s_py_grpc" % (facts["proto"], facts["proto"])

    py_library(
        name = name + "_lib",
        srcs = native.glob(
            ["*.py"],
            exclude = ["main.py"],
        ) + ["//services:__init__.py"],
        data = native.glob(
            [
                "migrations/*.sql",
                "migrations/*.py",
            ],
            allow_empty = True,
        ),
        visibility = LIBRARY_VISIBILITY,
        deps = _unique([
            "//libs/platform",
            own_protos,
            requirement("asyncpg"),
            requirement("grpcio"),
            requirement("protobuf"),
        ] + deps),
    )

    py_binary(
        name = name,
        srcs = ["main.py"],
        main = "main.py",
        visibility = ["//visibility:public"],
        deps = [":%s_lib" % name],
    )

    py_service_image(
        name = "image",
        binary = ":" + name,
        port = facts["port"],
    )

    py_pytest_test(
        name = name + "_test",
        srcs = native.glob(["tests/*.py"]),
        data = test_data,
        deps = _unique([
            ":%s_lib" % name,
            "//libs/platform/testing",
        ] + test_deps),
        **test_kwargs
    )

    typecheck_test(deps = _unique([
        ":" + name,
        ":%s_lib" % name,
        "//libs/platform/testing",
    ] + test_deps))

def _unique(labels):
    out = []
    for label in labels:
        if label not in out:
            out.append(label)
    return out
