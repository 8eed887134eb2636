#!/usr/bin/env bash
# Proves `tools/bazel run //tools/new_service -- NAME` from a scratch clone of HEAD:
#   1. the scaffold writes the new service (NAME, default "scaffoldcheck");
#   2. `tools/bazel test //...` passes, the new service's own tests among them;
#   3. `tools/bazel run //tools/local:run` serves it: its health check answers SERVING, and
#      its CreateItem, called with a real user's token (usersvc CreateUser, authsvc Login),
#      stores an item owned by that user.
# It runs Bazel itself, so it cannot run inside `bazel test`: .ci/run calls it. The clone
# gets its own Bazel output base inside the scratch directory (server shut down and all
# deleted at the end); the disk and repository caches are the shared ones (.bazelrc).
set -euo pipefail

name="${1:-scaffoldcheck}"
svc="${name}svc"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/micro-scaffold.XXXXXX")"
clone="$scratch/repo"
run_pid=""

log() { echo "scaffold_check: $*" >&2; }

bazel() { tools/bazel --output_base="$scratch/output_base" "$@"; }

# The local run is a process group of its own (setsid): the runner, its services and its
# PostgreSQL all get the SIGTERM, whatever Bazel's launchers in between do with it.
stop_local_run() {
  [[ -n "$run_pid" ]] || return 0
  kill -TERM -- "-$run_pid" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 -- "-$run_pid" 2>/dev/null || { run_pid=""; return 0; }
    sleep 1
  done
  kill -KILL -- "-$run_pid" 2>/dev/null || true
  run_pid=""
}

cleanup() {
  stop_local_run
  if [[ -d "$clone" ]]; then
    (cd "$clone" && bazel shutdown >/dev/null 2>&1) || true
  fi
  cd /
  rm -rf "$scratch"
}
trap cleanup EXIT

started="$(date +%s)"
git clone -q "$repo" "$clone"
cd "$clone"
log "$(git rev-parse --short HEAD): scaffolding '$name' in $clone"
bazel run //tools/new_service -- "$name"

log "tools/bazel test //..."
bazel test //...

# The whole system on a block of free ports (the runner puts the services on consecutive
# ports from --base-port, in the inventory's order), metrics on any free port.
base="$(python3 - <<'PY'
import random, socket
for _ in range(100):
    base = random.randint(20000, 40000)
    try:
        socks = []
        for port in range(base, base + 16):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
)"
run_log="$scratch/run.log"
log "tools/bazel run //tools/local:run -- --base-port $base"
setsid tools/bazel --output_base="$scratch/output_base" run //tools/local:run -- \
  --base-port "$base" --metrics-base-port 0 >"$run_log" 2>&1 &
run_pid=$!
for _ in $(seq 300); do
  grep -q "local system is up" "$run_log" && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$run_log" >&2; log "the local run exited"; exit 1; }
  sleep 1
done
grep -q "local system is up" "$run_log" || { tail -50 "$run_log" >&2; log "the local run did not come up"; exit 1; }
address() { awk -v s="$1" '$1 == s { print $2 }' "$run_log" | tail -1; }
users="$(address usersvc)" auth="$(address authsvc)" new="$(address "$svc")"
[[ -n "$new" ]] || { cat "$run_log" >&2; log "the local run does not list $svc"; exit 1; }
log "the local run serves $svc at $new"

microctl() { bazel run //tools/cli:microctl -- --usersvc "$users" --authsvc "$auth" "$@"; }
health="$(microctl call "$new" grpc.health.v1.Health/Check "{\"service\": \"$name.v1.${name^}Service\"}")"
grep -q '"status": "SERVING"' <<<"$health" || { log "health: $health"; exit 1; }
email="scaffold-check-$$@example.com"
user="$(microctl create-user --email "$email" --password "correct horse battery")"
user_id="$(sed -n 's/.*"user_id": "\([^"]*\)".*/\1/p' <<<"$user")"
token="$(microctl login --email "$email" --password "correct horse battery" --token-only)"
item="$(microctl --token "$token" call "$new" "$name.v1.${name^}Service/CreateItem" '{"name": "scaffold check"}')"
log "CreateItem answered: $(tr -d '\n' <<<"$item")"
grep -q "\"owner_id\": \"$user_id\"" <<<"$item" || { log "the item is not the user's"; exit 1; }
grep -q '"item_id": "' <<<"$item" || { log "no item_id"; exit 1; }

stop_local_run
log "passed in $(($(date +%s) - started))s: scaffold, tools/bazel test //..., local run serving $svc"
