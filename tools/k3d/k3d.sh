#!/usr/bin/env bash
# Local Kubernetes workflow: a k3d cluster named "dev" running the dev overlay.
# Run `tools/k3d/k3d.sh help` for the commands.
set -euo pipefail

# Every per-service step (build target, tarball, import, restart, port-forward) derives
# from these lists, written from services/inventory.bzl. GRPC_PORTS is in the order of
# SERVICES: plain arrays, not associative ones, because macOS ships bash 3.2.
# BEGIN services (generated: tools/bazel run //tools/inventory:sync)
SERVICES=(usersvc paymentsvc authsvc)
GRPC_PORTS=(50051 50052 50053)
# END services

CLUSTER=dev
NAMESPACE=micro
# Pinned on every kubectl call so that a shell whose current context points at a shared
# cluster can never receive the dev overlay by accident.
KUBE_CONTEXT="k3d-${CLUSTER}"

# No dirname: the script needs nothing beyond bash, k3d, kubectl and bazel.
script_dir="${BASH_SOURCE[0]%/*}"
[[ "$script_dir" == "${BASH_SOURCE[0]}" ]] && script_dir=.
REPO_ROOT="$(cd "$script_dir/../.." && pwd)"
BAZEL="${BAZEL:-$REPO_ROOT/tools/bazel}"

die() {
  echo "k3d.sh: error: $*" >&2
  exit 1
}

log() {
  echo "k3d.sh: $*" >&2
}

usage() {
  cat <<EOF
Usage: tools/k3d/k3d.sh COMMAND [ARGS]

Commands:
  up                 create the k3d cluster '${CLUSTER}' (no-op if it exists)
  down               delete the cluster '${CLUSTER}'
  build              build the service image tarballs with Bazel (\$BAZEL, default tools/bazel),
                     for this machine's CPU or \$IMAGE_ARCH (amd64 or arm64)
  import             import the built tarballs into the cluster
  apply [OVERLAY]    kubectl apply -k deploy/kustomize/overlays/OVERLAY (default: dev)
  restart            restart every service deployment and wait for the rollouts
  status             list pods and services in namespace '${NAMESPACE}'
  logs SERVICE       follow the logs of one of: ${SERVICES[*]}
  port-forward       forward every service's gRPC port to localhost until Ctrl-C
  deploy             build + import + apply + restart
  help               show this help
EOF
}

require_k3d() {
  command -v k3d >/dev/null 2>&1 ||
    die "k3d not found on PATH: install k3d v5 (https://k3d.io)"
}

require_kubectl() {
  command -v kubectl >/dev/null 2>&1 ||
    die "kubectl not found on PATH: install kubectl (https://kubernetes.io/docs/tasks/tools/)"
}

cluster_exists() {
  k3d cluster list "$CLUSTER" >/dev/null 2>&1
}

# For commands that talk to the cluster: fail with the next step to take, not with a
# kubectl connection error that does not say which cluster was meant.
require_cluster() {
  require_k3d
  require_kubectl
  cluster_exists ||
    die "k3d cluster '${CLUSTER}' does not exist: create it with 'tools/k3d/k3d.sh up'"
  kubectl --context "$KUBE_CONTEXT" cluster-info >/dev/null 2>&1 ||
    die "cluster '${CLUSTER}' exists but its API does not answer on context '${KUBE_CONTEXT}': start it with 'k3d cluster start ${CLUSTER}'"
}

kube() {
  kubectl --context "$KUBE_CONTEXT" "$@"
}

# The image variant the cluster's nodes run (tools/oci/defs.bzl builds amd64 and arm64):
# IMAGE_ARCH if set, else this machine's CPU, since k3d's nodes are containers of the local
# engine, which runs its own CPU's images (Docker Desktop on Apple silicon: arm64).
image_arch() {
  local arch="${IMAGE_ARCH:-}"
  if [[ -z "$arch" ]]; then
    case "$(uname -m)" in
      x86_64 | amd64) arch=amd64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) arch="$(uname -m)" ;;
    esac
  fi
  [[ "$arch" == amd64 || "$arch" == arm64 ]] ||
    die "no image variant for '${arch}': set IMAGE_ARCH=amd64 or IMAGE_ARCH=arm64"
  echo "$arch"
}

# Building //services/<svc>:image_tarball_<arch> (the `tarball` output group of
# :image_load_<arch>, see tools/oci/defs.bzl) leaves the file where oci_load writes it.
tarball_path() {
  echo "$REPO_ROOT/bazel-bin/services/$1/image_load_$(image_arch)/tarball.tar"
}

cmd_up() {
  require_k3d
  if cluster_exists; then
    log "cluster '${CLUSTER}' already exists"
    return 0
  fi
  # Services are reached by port-forward, so neither the ingress controller nor the
  # load-balancer stand-in is wanted; both would only take host ports and memory.
  k3d cluster create "$CLUSTER" \
    --k3s-arg "--disable=traefik@server:0" \
    --k3s-arg "--disable=servicelb@server:0"
}

cmd_down() {
  require_k3d
  if ! cluster_exists; then
    log "cluster '${CLUSTER}' does not exist; nothing to delete"
    return 0
  fi
  k3d cluster delete "$CLUSTER"
}

cmd_build() {
  [[ -x "$BAZEL" ]] || command -v "$BAZEL" >/dev/null 2>&1 ||
    die "bazel not found: '$BAZEL' is not executable (set BAZEL=/path/to/bazel)"
  local targets=() svc arch
  arch="$(image_arch)"
  for svc in "${SERVICES[@]}"; do
    targets+=("//services/${svc}:image_tarball_${arch}")
  done
  log "building the linux/${arch} images (IMAGE_ARCH=amd64|arm64 picks another)"
  (cd "$REPO_ROOT" && "$BAZEL" build "${targets[@]}")
}

cmd_import() {
  local svc tarball
  # Check all first, so a missing build does not leave the cluster with a mix of images.
  for svc in "${SERVICES[@]}"; do
    tarball="$(tarball_path "$svc")"
    [[ -f "$tarball" ]] || die "image tarball for ${svc} not found at ${tarball}: run 'tools/k3d/k3d.sh build' first"
  done
  for svc in "${SERVICES[@]}"; do
    k3d image import "$(tarball_path "$svc")" -c "$CLUSTER"
  done
}

cmd_apply() {
  local overlay="${1:-dev}"
  local dir="$REPO_ROOT/deploy/kustomize/overlays/$overlay"
  [[ -f "$dir/kustomization.yaml" ]] || die "no overlay '${overlay}' (expected ${dir}/kustomization.yaml)"
  kube apply -k "$dir"
}

cmd_restart() {
  local svc
  # The dev image tag never changes, so apply alone does not replace running pods.
  for svc in "${SERVICES[@]}"; do
    kube -n "$NAMESPACE" rollout restart "deployment/${svc}"
  done
  for svc in "${SERVICES[@]}"; do
    kube -n "$NAMESPACE" rollout status "deployment/${svc}" --timeout=180s
  done
}

cmd_status() {
  kube get pods,svc -n "$NAMESPACE"
}

cmd_logs() {
  local svc="${1:-}" known
  [[ -n "$svc" ]] || die "logs needs a service: one of ${SERVICES[*]}"
  for known in "${SERVICES[@]}"; do
    if [[ "$known" == "$svc" ]]; then
      exec kubectl --context "$KUBE_CONTEXT" logs -n "$NAMESPACE" "deployment/${svc}" -f
    fi
  done
  die "unknown service '${svc}': one of ${SERVICES[*]}"
}

cmd_port_forward() {
  local i svc port
  FORWARD_PIDS=()
  # Background jobs of a non-interactive shell ignore SIGINT, so Ctrl-C alone would leave
  # the forwards holding the ports, as would a TERM sent to this script only; stop them
  # explicitly on every way out.
  trap 'stop_forwards; exit 130' INT
  trap 'stop_forwards; exit 143' TERM
  trap 'stop_forwards' EXIT
  for i in "${!SERVICES[@]}"; do
    svc="${SERVICES[$i]}"
    port="${GRPC_PORTS[$i]}"
    # kubectl itself, not the kube function: a function would run in a subshell and $!
    # would name that subshell, so the kill below would miss kubectl.
    kubectl --context "$KUBE_CONTEXT" -n "$NAMESPACE" port-forward "svc/${svc}" "${port}:${port}" &
    FORWARD_PIDS+=("$!")
    log "forwarding localhost:${port} -> ${svc}"
  done
  log "press Ctrl-C to stop"
  wait
}

stop_forwards() {
  local pid
  # The +-expansion keeps an empty array legal under set -u in bash before 4.4.
  for pid in ${FORWARD_PIDS[@]+"${FORWARD_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  FORWARD_PIDS=()
}

main() {
  local cmd="${1:-help}"
  if [[ $# -gt 0 ]]; then
    shift
  fi
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    build) cmd_build ;;
    import) require_cluster; cmd_import ;;
    apply) require_cluster; cmd_apply "$@" ;;
    restart) require_cluster; cmd_restart ;;
    status) require_cluster; cmd_status ;;
    logs) require_cluster; cmd_logs "$@" ;;
    port-forward) require_cluster; cmd_port_forward ;;
    deploy)
      # Checked before the build, which is the slow part, rather than after it.
      require_cluster
      cmd_build
      cmd_import
      cmd_apply dev
      cmd_restart
      ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      die "unknown command '${cmd}'"
      ;;
  esac
}

main "$@"
