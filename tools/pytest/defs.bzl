"""py_pytest_test: a py_test whose tests are collected and run by pytest."""

load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def py_pytest_test(name, srcs, deps = [], data = [], args = [], **kwargs):
    """Runs the pytest tests in `srcs` (conftest.py files included) as one Bazel test.

    Args:
      name: target name.
      srcs: test modules and their conftest.py files.
      deps: libraries the tests import.
      data: files the tests read at run time.
      args: extra pytest arguments.
      **kwargs: passed to py_test (size, tags, shard_count, ...).
    """
    py_test(
        name = name,
        srcs = srcs + [Label("//tools/pytest:pytest_main.py")],
        main = Label("//tools/pytest:pytest_main.py"),
        args = args + ["$(rootpath %s)" % src for src in srcs if not src.endswith("conftest.py")],
        data = data + [Label("//:pytest.ini")],
        # Every test target gets the same pytest plugins, so pytest.ini means the same
        # everywhere (asyncio_mode = auto).
        deps = deps + [
            requirement("pytest"),
            requirement("pytest-asyncio"),
        ],
        **kwargs
    )
