#!/usr/bin/env bash
# Written by the offline rules_oci stand-in's oci_load: docker or podman load of the image.
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
loader="$(command -v docker || command -v podman || true)"
[[ -n "$loader" ]] || { echo "oci_load: neither docker nor podman is on PATH" >&2; exit 1; }
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
"$runfiles/{{tool}}" load --image "$runfiles/{{image}}" --out "$tmp" {{tags}}
"$loader" load -i "$tmp"
