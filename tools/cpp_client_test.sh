#!/usr/bin/env bash
# The tests of the C++ client's module's programs, across the repository's two Bazel
# workspaces: builds //:micro_client and //openloop:micro_openloop in clients/cpp
# (tools/cpp_build.sh), then runs the tests here that use them, with the programs' paths in
# MICRO_CLIENT and MICRO_OPENLOOP. Arguments go to the test command (e.g.
# --test_output=streamed). BAZEL overrides the Bazel to run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"

programs=()
while IFS= read -r program; do programs+=("$program"); done \
  < <("$repo/tools/cpp_build.sh" //:micro_client //openloop:micro_openloop)
((${#programs[@]} == 2)) || { echo "cpp_client_test: the C++ build printed no programs" >&2; exit 1; }

# The paths stay the same when what they hold changes; the digest makes Bazel rerun the tests.
digest="$(cat "${programs[@]}" | sha256sum | cut -d' ' -f1)"

cd "$repo"
exec "$bazel" test //tests/cpp_client:micro_client_test //tools/bench:native_openloop_test \
  --test_env=MICRO_CLIENT="${programs[0]}" --test_env=MICRO_OPENLOOP="${programs[1]}" \
  --test_env=MICRO_BUILT_DIGEST="$digest" "$@"
