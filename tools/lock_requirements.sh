#!/usr/bin/env bash
# Regenerates requirements_lock.txt from requirements.in: every transitive dependency,
# pinned, with the hashes of all published files (so the same lock serves every platform).
# The target interpreter is the build's Python (3.14); uv resolves for it from any host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${XDG_CACHE_HOME:-$HOME/.cache}/micro/uv-venv"
[[ -x "$venv/bin/uv" ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q uv; }
"$venv/bin/uv" pip compile requirements.in \
  --python-version 3.14 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --emit-index-url --no-header --only-binary :all: \
  --index-url https://pypi.org/simple \
  -o requirements_lock.txt
