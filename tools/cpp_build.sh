#!/usr/bin/env bash
# Builds targets of the C++ client's module (clients/cpp, a Bazel workspace of its own) and
# prints each one's executable path, one per line, for the services' workspace to run:
#   tools/cpp_build.sh //:micro_client //openloop:micro_openloop
# Arguments that start with `-` are Bazel flags for the build, e.g. `-c opt`'s `--compilation_mode=opt`.
# BAZEL overrides the Bazel to run (tools/bazel by default, which finds bazelisk or builds
# the offline root). Build output goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"
flags=() labels=()
for arg in "$@"; do
  if [[ "$arg" == -* ]]; then flags+=("$arg"); else labels+=("$arg"); fi
done
((${#labels[@]})) || { echo "usage: tools/cpp_build.sh [--BAZEL_FLAG ...] //LABEL [//LABEL ...]" >&2; exit 2; }

cd "$repo/clients/cpp"
# The `+` forms: bash 3.2 (macOS's) calls an empty array unset under `set -u`.
"$bazel" build ${flags[@]+"${flags[@]}"} "${labels[@]}" >&2
exec_root="$("$bazel" info execution_root 2>/dev/null)"
for label in "${labels[@]}"; do
  file="$("$bazel" cquery ${flags[@]+"${flags[@]}"} --output=files "$label" 2>/dev/null)"
  [[ -x "$exec_root/$file" ]] || { echo "cpp_build: $label built no program at $exec_root/$file" >&2; exit 1; }
  echo "$exec_root/$file"
done
