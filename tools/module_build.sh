#!/usr/bin/env bash
# Builds targets of one of the repository's other Bazel modules (a workspace of its own:
# clients/cpp, gateway) and prints each one's output file, one per line, for the services'
# workspace to use:
#   tools/module_build.sh gateway //:openapi
# Arguments that start with `-` are Bazel flags for the build, e.g. `--compilation_mode=opt`.
# BAZEL overrides the Bazel to run (tools/bazel by default, which finds bazelisk or builds
# the offline root). Build output goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"
usage="usage: tools/module_build.sh MODULE_DIR [--BAZEL_FLAG ...] //LABEL [//LABEL ...]"
(($#)) || { echo "$usage" >&2; exit 2; }
module="$1"
shift
[[ -f "$repo/$module/MODULE.bazel" ]] || { echo "module_build: $module has no MODULE.bazel" >&2; exit 2; }
flags=() labels=()
for arg in "$@"; do
  if [[ "$arg" == -* ]]; then flags+=("$arg"); else labels+=("$arg"); fi
done
((${#labels[@]})) || { echo "$usage" >&2; exit 2; }

cd "$repo/$module"
# The `+` forms: bash 3.2 (macOS's) calls an empty array unset under `set -u`.
"$bazel" build ${flags[@]+"${flags[@]}"} "${labels[@]}" >&2
exec_root="$("$bazel" info execution_root 2>/dev/null)"
for label in "${labels[@]}"; do
  file="$("$bazel" cquery ${flags[@]+"${flags[@]}"} --output=files "$label" 2>/dev/null)"
  [[ -n "$file" && "$file" != *$'\n'* && -e "$exec_root/$file" ]] \
    || { echo "module_build: $label built no single file (got: ${file:-nothing})" >&2; exit 1; }
  echo "$exec_root/$file"
done
