#!/usr/bin/env bash
# A Bazel remote cache on loopback: nginx with WebDAV PUT, which is all Bazel's HTTP cache
# protocol needs (GET/HEAD/PUT of /ac/<sha256> and /cas/<sha256>).
#
#   tools/remote_cache/serve.sh start    # installs nginx if missing, serves 127.0.0.1:$PORT
#   tools/remote_cache/serve.sh stop
#   tools/remote_cache/serve.sh status
#   tools/bazel test //... --config=remote-cache
#
# Data lives in ~/.cache/micro/remote-cache (MICRO_REMOTE_CACHE_DIR); PORT must match the
# remote-cache config in .bazelrc. The Bazel server runs inside the Debian root but shares
# the host's network namespace, so 127.0.0.1 reaches this server from both sides.
set -euo pipefail

PORT="${MICRO_REMOTE_CACHE_PORT:-9180}"
DIR="${MICRO_REMOTE_CACHE_DIR:-$HOME/.cache/micro/remote-cache}"
CONF="$DIR/nginx.conf"
PIDFILE="$DIR/nginx.pid"

die() { echo "remote_cache: $*" >&2; exit 1; }

ensure_nginx() {
  command -v nginx >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || die "nginx is not installed; install nginx-light (Debian) or nginx"
  echo "remote_cache: installing nginx-light" >&2
  # apt-get update failures (an unrelated broken source) must not hide a usable index.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx \
    || die "could not install nginx"
}

running() {
  [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

write_conf() {
  mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/logs"
  # Workers run as the invoking user so they can write the data directory.
  local user_line=""
  [[ "$(id -u)" == 0 ]] && user_line="user root;"
  cat >"$CONF" <<CONF
$user_line
worker_processes 2;
pid $PIDFILE;
error_log $DIR/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $DIR/tmp;
  proxy_temp_path $DIR/tmp;
  fastcgi_temp_path $DIR/tmp;
  uwsgi_temp_path $DIR/tmp;
  scgi_temp_path $DIR/tmp;
  server {
    listen 127.0.0.1:$PORT;
    root $DIR/data;
    # Action outputs can be large (Python runfiles, images); Bazel streams them whole.
    client_max_body_size 0;
    client_body_buffer_size 1m;
    location / {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
CONF
}

start() {
  if running; then
    echo "remote cache already running: http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  ensure_nginx
  write_conf
  nginx -t -q -c "$CONF" -p "$DIR" -e "$DIR/logs/error.log" || die "bad nginx config: $CONF"
  nginx -c "$CONF" -p "$DIR" -e "$DIR/logs/error.log"
  # Round-trip one blob so a broken setup fails here, not halfway through a build.
  local probe="probe-$$"
  for _ in $(seq 50); do
    if curl -fsS -X PUT --data-binary ok "http://127.0.0.1:$PORT/health/$probe" >/dev/null 2>&1; then
      [[ "$(curl -fsS "http://127.0.0.1:$PORT/health/$probe")" == ok ]] \
        || die "PUT worked but GET did not return the blob"
      rm -f "$DIR/data/health/$probe"
      echo "remote cache: http://127.0.0.1:$PORT (data $DIR/data, pid $(cat "$PIDFILE"))"
      return 0
    fi
    sleep 0.1
  done
  die "nginx did not answer on 127.0.0.1:$PORT; see $DIR/logs/error.log"
}

stop() {
  if ! running; then
    echo "remote cache not running"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -QUIT "$pid"
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { echo "remote cache stopped"; return 0; }
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  echo "remote cache stopped (forced)"
}

status() {
  if running; then
    echo "running: http://127.0.0.1:$PORT pid $(cat "$PIDFILE"), $(du -sh "$DIR/data" | cut -f1) cached"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
