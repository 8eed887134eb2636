#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the container tests and the container run mode.
#
#   docker.sh ensure STATE_FILE   engine up? done. Else, as root on a Debian-like machine,
#                                 install docker.io if missing and start dockerd; its pid
#                                 goes to STATE_FILE so that `stop` ends only what we started.
#   docker.sh stop STATE_FILE     stop the dockerd that `ensure` started, if any.
#
# Anywhere else (not root, no apt) it only says why there is no engine; the tests that need
# one then skip with that reason.
set -euo pipefail

log() { echo "engine: $*" >&2; }

answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

ensure() {
  local state="$1"
  : >"$state"
  if answers; then
    log "a Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    log "no Docker engine answers, and starting one needs root on a Debian-like machine"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    log "installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null 2>&1 || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    }
  fi
  # No bridge and no iptables rules: containers use the host's network (loopback only here),
  # and nothing of the host's firewall changes.
  local logfile="${state}.log"
  dockerd --iptables=false --bridge=none >"$logfile" 2>&1 &
  echo $! >"$state"
  local i
  for i in $(seq 1 60); do
    answers && { log "started dockerd (pid $(cat "$state"), log $logfile) in ${i}x0.5 s"; return 0; }
    kill -0 "$(cat "$state")" 2>/dev/null || break
    sleep 0.5
  done
  log "dockerd did not answer; its log:"
  tail -20 "$logfile" >&2
  stop "$state"
  return 1
}

stop() {
  local state="$1" pid
  [[ -s "$state" ]] || return 0
  pid="$(cat "$state")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local i
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    log "stopped dockerd (pid $pid)"
  fi
  : >"$state"
}

case "${1:-}" in
  ensure) [[ $# -eq 2 ]] || { echo "usage: $0 ensure STATE_FILE" >&2; exit 2; }; ensure "$2" ;;
  stop) [[ $# -eq 2 ]] || { echo "usage: $0 stop STATE_FILE" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 ensure|stop STATE_FILE" >&2; exit 2 ;;
esac
