#!/usr/bin/env bash
# Builds and enters the Debian forky root that supplies Bazel 7.7.1 and its packaged rule
# sets on a Linux machine that has no Bazel of its own (see tools/debian_root/README.md).
#
#   root.sh ensure          create or repair the root; print its path
#   root.sh run CMD [ARG..] run CMD inside the root, in the caller's directory
#
# The root is made once and reused: a stamp written only after a complete, verified build
# records a hash of this script and the package list, so a half-made root or a changed
# recipe is rebuilt, and an intact one costs a few checks to re-enter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${MICRO_DEBIAN_ROOT:-/var/cache/micro/debian-forky}"
MIRROR="${MICRO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STAMP="$ROOT/.micro-root-stamp"

die() { echo "debian_root: $*" >&2; exit 1; }
log() { echo "debian_root: $*" >&2; }

recipe_hash() {
  cat "$here/root.sh" "$here/packages.txt" | sha256sum | cut -d' ' -f1
}

packages() { grep -v -E '^\s*(#|$)' "$here/packages.txt" | tr '\n' ' '; }

root_is_ready() {
  [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(recipe_hash)" ]] \
    && [[ -x "$ROOT/usr/bin/bazel" ]] && [[ -x "$ROOT/usr/bin/python3" ]]
}

build_root() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap on the host"
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
  }
  local script=/usr/share/debootstrap/scripts/forky
  # Older debootstrap releases have no forky script; forky is built like sid.
  [[ -f "$script" ]] || script=/usr/share/debootstrap/scripts/sid
  log "creating $ROOT (debootstrap forky, about a minute)"
  unmount_all
  rm -rf "$ROOT"
  mkdir -p "$(dirname "$ROOT")"
  debootstrap --variant=minbase forky "$ROOT" "$MIRROR" "$script" >"$ROOT.debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $ROOT.debootstrap.log"
  configure_root
  log "installing packages: $(packages)"
  in_root_raw apt-get update -qq
  # shellcheck disable=SC2046
  in_root_raw env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(packages) >"$ROOT.apt.log" 2>&1 || die "apt-get install failed; see $ROOT.apt.log"
  in_root_raw apt-get clean
  recipe_hash >"$STAMP"
  log "root ready"
}

configure_root() {
  # sid is listed at a low pin for the few rule sets forky does not carry yet
  # (packages.txt asks for those as NAME/sid).
  cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR forky main
deb $MIRROR sid main
EOF
  cat >"$ROOT/etc/apt/preferences.d/sid-low" <<EOF
Package: *
Pin: release n=sid
Pin-Priority: 100
EOF
  # forky's Release file can outlive its Valid-Until on a mirror snapshot.
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99no-check-valid"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # Every Bazel run inside the root uses the workspace's offline config (.bazelrc);
  # Debian's /etc/bazel/bazelrc imports this file.
  echo 'common --config=debian' >"$ROOT/etc/bazel.bazelrc"
  # Package scripts must never start daemons (PostgreSQL) inside the root.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod +x "$ROOT/usr/sbin/policy-rc.d"
  sync_certificates
}

# An intercepting HTTPS proxy may sign traffic with its own CA; Bazel's downloader (Java)
# trusts only what ca-certificates-java puts in the root's truststore.
sync_certificates() {
  local src=/usr/local/share/ca-certificates
  [[ -d "$src" ]] || return 0
  mkdir -p "$ROOT$src"
  if ! diff -rq "$src" "$ROOT$src" >/dev/null 2>&1; then
    cp -a "$src/." "$ROOT$src/"
    if [[ -x "$ROOT/usr/sbin/update-ca-certificates" ]]; then
      in_root_raw update-ca-certificates >/dev/null 2>&1 || true
    fi
  fi
}

in_root_raw() {
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private -- bash -c '
    set -e; ROOT="$1"; shift
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"
    exec chroot "$ROOT" "$@"' _ "$ROOT" "$@"
}

ensure() {
  [[ "$(uname -s)" == Linux ]] || die "the Debian root needs Linux; install Bazel 7.7.1 (bazelisk) instead"
  [[ "$(id -u)" == 0 ]] || die "building or entering the Debian root needs root (chroot, mounts); run as root or install Bazel 7.7.1 (bazelisk)"
  if ! root_is_ready; then
    build_root
  else
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    sync_certificates
  fi
}

# Paths shared at the same absolute location on both sides, so `bazel-bin` symlinks and the
# output user root resolve identically inside and outside the root.
shared_paths() {
  # The whole git checkout (or the current directory), so `bazel-*` links and git work.
  git -C "$PWD" rev-parse --show-toplevel 2>/dev/null || echo "$PWD"
  printf '%s\n' /tmp "${MICRO_BAZEL_CACHE:-$HOME/.cache/bazel}" "$HOME/.cache/micro"
}

# Mounts are made once, in the host's mount namespace, and reused: the Bazel server outlives
# each client, and a client only reconnects to a server it can see in the same namespace and
# root (otherwise it restarts the server, costing seconds on every command).
bind_once() {
  local src="$1" dst="$ROOT$1"
  mountpoint -q "$dst" && return 0
  mkdir -p "$dst"
  mount --bind "$src" "$dst"
}

mount_all() {
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  local d
  for d in /dev /sys; do
    if ! mountpoint -q "$ROOT$d"; then
      mount --rbind "$d" "$ROOT$d"
      # Unmounting inside the root must never propagate back to the host.
      mount --make-rslave "$ROOT$d"
    fi
  done
  local p
  while IFS= read -r p; do [[ -n "$p" ]] && bind_once "$p"; done < <(shared_paths | sort -u)
}

# Before the root is deleted or rebuilt: nothing below it may still be mounted, or rm -rf
# would reach the host's /dev and the checkout.
unmount_all() {
  [[ -d "$ROOT" ]] || return 0
  local m
  while IFS= read -r m; do
    umount -R "$m" 2>/dev/null || umount -l "$m" || true
  done < <(findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r "/") == 1' | sort -r)
  if findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r "/") == 1' | grep -q .; then
    die "could not unmount everything below $ROOT; refusing to delete it"
  fi
}

run() {
  ensure
  mkdir -p "${MICRO_BAZEL_CACHE:-$HOME/.cache/bazel}" "$HOME/.cache/micro"
  mount_all
  exec chroot "$ROOT" /usr/bin/env -C "$PWD" HOME="$HOME" USER="${USER:-root}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TERM="${TERM:-dumb}" CI="${CI:-}" "$@"
}

case "${1:-}" in
  ensure) ensure; echo "$ROOT" ;;
  run) shift; [[ $# -gt 0 ]] || die "usage: root.sh run CMD [ARG...]"; run "$@" ;;
  *) die "usage: root.sh ensure | root.sh run CMD [ARG...]" ;;
esac
