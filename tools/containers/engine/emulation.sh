#!/usr/bin/env bash
# Lets this machine run the images' other CPU (linux/arm64 on x86_64, linux/amd64 on
# aarch64) under qemu-user emulation, for //tools/oci/tests:containers_<arch>_test.
#
#   emulation.sh ensure   the other CPU's binaries run? done. Else, as root on a Debian-like
#                         machine: install qemu-user-static, mount binfmt_misc and register
#                         the emulator with the F flag (opened now, so it also works inside
#                         containers, whose root has no /usr/libexec/qemu-binfmt).
#
# Anywhere else it only says why not; the test of that variant then skips with the
# engine's reason. Docker Desktop (macOS) and colima ship this already. Registrations are
# system-wide and left in place: they only add a way to run foreign binaries.
set -euo pipefail

log() { echo "emulation: $*" >&2; }

case "$(uname -m)" in
  x86_64) other=aarch64 ;;
  aarch64 | arm64) other=x86_64 ;;
  *) log "no image variant for $(uname -m)"; exit 0 ;;
esac
binfmt=/proc/sys/fs/binfmt_misc
entry="$binfmt/qemu-$other"

registered() { [[ -f "$entry" ]] && head -1 "$entry" | grep -qx enabled; }

ensure() {
  if [[ "$(uname -s)" != Linux ]]; then
    log "not Linux: the container engine's own VM decides (Docker Desktop emulates both CPUs)"
    return 0
  fi
  if registered; then
    log "linux/$other binaries run here ($(sed -n 2p "$entry"))"
    return 0
  fi
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    log "qemu-$other is not registered with binfmt_misc, and registering it needs root on a Debian-like machine"
    return 0
  fi
  local conf="/usr/lib/binfmt.d/qemu-$other.conf"
  if [[ ! -f "$conf" ]]; then
    log "installing Debian's qemu-user-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null 2>&1 || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
    }
  fi
  mountpoint -q "$binfmt" || mount -t binfmt_misc binfmt_misc "$binfmt"
  # The package's line carries the F flag; systemd-binfmt would write it the same way.
  registered || cat "$conf" >"$binfmt/register"
  if registered; then
    log "registered qemu-$other ($(sed -n 2p "$entry"))"
  else
    log "could not register qemu-$other"
    return 1
  fi
}

case "${1:-}" in
  ensure) ensure ;;
  *) echo "usage: $0 ensure" >&2; exit 2 ;;
esac
