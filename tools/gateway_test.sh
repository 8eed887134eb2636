#!/usr/bin/env bash
# The tests of what the gateway's module builds, across the repository's two Bazel
# workspaces: builds //:openapi in gateway/ (tools/module_build.sh), then runs the test here
# that checks it, with the document's path in MICRO_OPENAPI. Arguments go to the test
# command (e.g. --test_output=streamed). BAZEL overrides the Bazel to run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"

document="$("$repo/tools/module_build.sh" gateway //:openapi)"

cd "$repo"
exec "$bazel" test //tests/gateway:openapi_test --test_env=MICRO_OPENAPI="$document" "$@"
