#!/usr/bin/env bash
# The runtime benchmark as BENCHMARKS.md reports it: builds the C++ open-loop driver in the
# C++ module's workspace (clients/cpp, optimised), then runs //tools/bench:bench with it.
# Arguments go to the bench, e.g. `tools/bench/run.sh --open-loop 0.8,2.0`; the refusal
# costs the same way: `tools/bench/run.sh --refusals`, and the gateway's cost per call:
# `tools/bench/run.sh --gateway` (results/gateway.md).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"
if [[ "${1:-}" == --gateway ]]; then
  # The gateway's cost per call: its program and document from the gateway's module.
  shift
  built=()
  while IFS= read -r file; do built+=("$file"); done \
    < <("$repo/tools/module_build.sh" gateway --compilation_mode=opt //:gateway //:openapi)
  cd "$repo"
  exec "$bazel" run //tools/bench:gateway_cost -- --gateway "${built[0]}" --openapi "${built[1]}" "$@"
fi
driver="$("$repo/tools/cpp_build.sh" --compilation_mode=opt //openloop:micro_openloop)"
target=//tools/bench:bench
if [[ "${1:-}" == --refusals ]]; then
  shift
  target=//tools/bench:refusals
fi
cd "$repo"
exec "$bazel" run "$target" -- --open-loop-driver "$driver" "$@"
