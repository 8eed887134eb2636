#!/usr/bin/env bash
# Builds programs of the C++ client's module (clients/cpp) and prints their paths, one per
# line (tools/module_build.sh):
#   tools/cpp_build.sh //:micro_client //openloop:micro_openloop
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/module_build.sh" clients/cpp "$@"
