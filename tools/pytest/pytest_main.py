"""Entry point that runs pytest inside a Bazel py_test.

Bazel passes the test files as arguments; this adds what Bazel expects of a test runner:
JUnit XML where Bazel collects it, --test_filter as `-k`, and sharding.
"""

import os
import sys

import pytest


def main() -> int:
    args = ["-p", "no:cacheprovider", "-c", os.environ.get("MICRO_PYTEST_INI", "pytest.ini")]
    if xml := os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", xml]
    if only := os.environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", only]
    # Bazel checks this file exists to know the runner understood sharding.
    if status := os.environ.get("TEST_SHARD_STATUS_FILE"):
        open(status, "w").close()
    return pytest.main(args + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
