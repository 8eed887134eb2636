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

# Only what makes the root counts: changing how it is entered must not rebuild it.
recipe_hash() {
  { declare -f build_root configure_root sync_certificates; cat "$here/packages.txt"; } \
    | sha256sum | cut -d' ' -f1
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
  forget_namespace
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
  # The images' other CPU (tools/platforms): apt lists its packages too, from which the
  # offline rules_oci stand-in unpacks that variant's base image. Nothing of it is installed.
  case "$(uname -m)" in
    x86_64) in_root_raw dpkg --add-architecture arm64 ;;
    aarch64) in_root_raw dpkg --add-architecture amd64 ;;
  esac
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
  # Two commands started together (a helper script and a terminal) must not both build it.
  mkdir -p "$(dirname "$ROOT")"
  exec {lock}>"$ROOT.lock"
  flock "$lock"
  if ! root_is_ready; then
    build_root
  else
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    sync_certificates
  fi
  flock -u "$lock"
}

# Paths shared at the same absolute location on both sides, so `bazel-bin` symlinks and the
# output user root resolve identically inside and outside the root.
checkout_dir() { git -C "$PWD" rev-parse --show-toplevel 2>/dev/null || echo "$PWD"; }

shared_paths() {
  # The whole git checkout (or the current directory), so `bazel-*` links and git work.
  checkout_dir
  printf '%s\n' /tmp "${MICRO_BAZEL_CACHE:-$HOME/.cache/bazel}" "$HOME/.cache/micro"
}

# Mounts are made once, in the root's own namespace (see run), and reused.
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

# The root's mounts live in a mount namespace of their own, kept alive by a bind mount of
# its nsfs file, so that they stay in place between runs (the Bazel server outlives each
# client, and a client only reconnects to a server it can see in the same namespace and
# root) while the host never sees them. That matters for the offline module file bound over
# MODULE.bazel (offline_module_files): in the host's namespace that mount would make
# `git checkout` or an editor's rename of MODULE.bazel fail with EBUSY; in a namespace of
# its own, a rename on the host just detaches it, and the next run binds it again.
NS_DIR=/run/micro
NS="$NS_DIR/$(basename "$ROOT").mnt"

# A namespace made before the root was (re)built still holds the old, deleted tree: the
# stamp seen from inside must be the very file the host sees.
namespace_alive() {
  [[ -f "$NS" ]] || return 1
  local inside
  inside="$(nsenter --mount="$NS" stat -c '%d:%i:%.9Y' "$STAMP" 2>/dev/null)" || return 1
  [[ "$inside" == "$(stat -c '%d:%i:%.9Y' "$STAMP")" ]]
}

ensure_namespace() {
  namespace_alive && return 0
  forget_namespace
  mkdir -p "$NS_DIR"
  # A namespace file can only be bound on a mount with private propagation.
  if ! mountpoint -q "$NS_DIR"; then
    mount --bind "$NS_DIR" "$NS_DIR"
  fi
  mount --make-private "$NS_DIR"
  touch "$NS"
  # slave: mounts made later on the host (a docker socket, a new checkout) still show up inside.
  unshare --mount="$NS" --propagation slave true
}

forget_namespace() {
  [[ -f "$NS" ]] || return 0
  umount "$NS" 2>/dev/null || true
  rm -f "$NS"
}

# Inside the root, each workspace's MODULE.bazel is its offline counterpart: the same BUILD
# files, but Debian's rule sets (rules_python 0.22.1) need their own module files
# (tools/offline/README.md). The services' workspace, the C++ client's (clients/cpp) and the
# gateway's (gateway/).
OFFLINE_MODULE_FILES=(
  "tools/offline/MODULE.bazel:MODULE.bazel"
  "tools/offline/cpp_client/MODULE.bazel:clients/cpp/MODULE.bazel"
  "tools/offline/gateway/MODULE.bazel:gateway/MODULE.bazel"
)

offline_module_files() {
  local top pair src dst
  top="$(checkout_dir)"
  for pair in "${OFFLINE_MODULE_FILES[@]}"; do
    src="$top/${pair%%:*}"
    dst="$ROOT$top/${pair#*:}"
    [[ -f "$src" && -f "$dst" ]] || continue
    if mountpoint -q "$dst"; then
      # An editor that replaces the offline file leaves the mount on the old inode.
      cmp -s "$src" "$dst" && continue
      umount "$dst"
    fi
    mount --bind "$src" "$dst"
  done
}

run() {
  ensure
  mkdir -p "${MICRO_BAZEL_CACHE:-$HOME/.cache/bazel}" "$HOME/.cache/micro"
  ensure_namespace
  # Entering a mount namespace resets the working directory to its root: keep ours.
  exec nsenter --mount="$NS" --wd="$PWD" -- "$here/root.sh" enter "$@"
}

# The host's Docker engine, for `bazel run //services/<svc>:image_load`, the container tests
# and the container run mode; the root carries the docker CLI (packages.txt). A restarted
# dockerd makes a new socket, so a bind of the old one is replaced.
docker_socket() {
  local sock=/run/docker.sock dst="$ROOT/run/docker.sock"
  [[ -S "$sock" ]] || return 0
  if mountpoint -q "$dst"; then
    [[ "$(stat -c %i "$sock")" == "$(stat -c %i "$dst")" ]] && return 0
    umount "$dst"
  fi
  [[ -e "$dst" ]] || touch "$dst"
  mount --bind "$sock" "$dst"
}

# Runs inside the namespace (see run).
enter() {
  mount_all
  offline_module_files
  docker_socket
  exec chroot "$ROOT" /usr/bin/env -C "$PWD" HOME="$HOME" USER="${USER:-root}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TERM="${TERM:-dumb}" CI="${CI:-}" "$@"
}

case "${1:-}" in
  ensure) ensure; echo "$ROOT" ;;
  run) shift; [[ $# -gt 0 ]] || die "usage: root.sh run CMD [ARG...]"; run "$@" ;;
  enter) shift; enter "$@" ;;
  *) die "usage: root.sh ensure | root.sh run CMD [ARG...]" ;;
esac
