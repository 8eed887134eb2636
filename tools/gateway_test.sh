#!/usr/bin/env bash
# The tests of what the gateway's module builds, across the repository's two Bazel
# workspaces: builds //:gateway, //:openapi and //:swagger_ui in gateway/
# (tools/module_build.sh), then runs the tests here that use them, with their paths in
# MICRO_GATEWAY, MICRO_OPENAPI and MICRO_SWAGGER_UI. Arguments go to the test
# command (e.g. --test_output=streamed). BAZEL overrides the Bazel to run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-$repo/tools/bazel}"

built=()
while IFS= read -r file; do built+=("$file"); done \
  < <("$repo/tools/module_build.sh" gateway //:gateway //:openapi //:swagger_ui)
((${#built[@]} == 3)) || { echo "gateway_test: the gateway build printed no files" >&2; exit 1; }

# The paths stay the same when what they hold changes; the digest makes Bazel rerun the tests.
digest="$(find "${built[@]}" -type f -exec cat {} + | sha256sum | cut -d' ' -f1)"

cd "$repo"
exec "$bazel" test //tests/gateway:gateway_test //tests/gateway:openapi_test \
  --test_env=MICRO_GATEWAY="${built[0]}" --test_env=MICRO_OPENAPI="${built[1]}" \
  --test_env=MICRO_SWAGGER_UI="${built[2]}" \
  --test_env=MICRO_BUILT_DIGEST="$digest" "$@"
