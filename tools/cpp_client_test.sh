#!/usr/bin/env bash
# The C++ client's end-to-end test, across the repository's two Bazel workspaces: builds
# //:micro_client in the C++ client's module (clients/cpp), then runs
# //tests/cpp_client:micro_client_test here with the binary's path in MICRO_CLIENT.
# Arguments go to the test command (e.g. --test_output=streamed). BAZEL overrides the Bazel
# to run (tools/bazel by default, which finds bazelisk or builds the offline root).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"

cd "$repo/clients/cpp"
"$bazel" build //:micro_client
client="$("$bazel" cquery --output=files //:micro_client 2>/dev/null)"
exec_root="$("$bazel" info execution_root 2>/dev/null)"
[[ -x "$exec_root/$client" ]] || { echo "cpp_client_test: no client at $exec_root/$client" >&2; exit 1; }

cd "$repo"
exec "$bazel" test //tests/cpp_client:micro_client_test --test_env=MICRO_CLIENT="$exec_root/$client" "$@"
