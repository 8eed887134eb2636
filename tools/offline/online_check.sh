#!/usr/bin/env bash
# Checks the online MODULE.bazel (the BCR one, not tools/offline/MODULE.bazel) on a machine
# without bcr.bazel.build or github.com, with the Debian root's Bazel 7.7.1 and no Debian
# overrides (--nosystem_rc).
#
# What it proves: the module graph resolves from a BCR snapshot with
# --check_direct_dependencies=error, every BUILD/.bzl file loads against the BCR versions,
# and `bazel build --nobuild //...` (analysis, toolchain resolution) passes.
#
# What it stands in, so read a pass with that in mind:
#  - each module archive: `git archive` of the upstream tag from a local git mirror, with the
#    registry's MODULE.bazel put in (the BCR patches of these versions only touch
#    MODULE.bazel and are dropped) and native.bazel_version read as "7.7.1" (Debian's Bazel
#    reports ""). Release archives differ from tags in places (aspect_bazel_lib's
#    tools/integrity.bzl, rules_kotlin's *.release.bazel): those parts are not checked.
#  - prebuilt tools and images from github.com and Docker Hub: analysis-only stubs under
#    $WORK/stand, including CPython 3.14 (the root's python3.14) and python:3.14-slim.
#
#   tools/offline/online_check.sh [TARGET...]     default //...
# Env: MIRROR (git mirrors as owner+name/repo, default /work/.mirror), WORK (default /tmp/online_check).
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIRROR="${MIRROR:-/work/.mirror}"
WORK="${WORK:-/tmp/online_check}"
ws="$WORK/ws" reg="$WORK/bcr" src="$WORK/src" st="$WORK/stand"
rm -rf "$ws" "$reg" "$src" "$st"
mkdir -p "$ws" "$reg" "$src" "$st"

# A copy of the working tree (tracked and untracked, not ignored) without the offline module
# file, which root.sh would bind over ours.
git -C "$top" ls-files -co --exclude-standard | grep -v '^tools/offline/MODULE.bazel$' \
  | tar -C "$top" --ignore-failed-read -cf - -T - | tar -xf - -C "$ws"
git --git-dir="$MIRROR/bazelbuild+bazel-central-registry/repo" archive HEAD bazel_registry.json modules | tar -xf - -C "$reg"

# name version [tree-ish [mirror]]: point the registry's source.json at a local archive.
localize() {
  local name="$1" ver="$2" v="$reg/modules/$1/$2" git tree prefix tmp
  git="$MIRROR/${4:-$(python3 -c 'import json,sys; print([r[7:] for r in json.load(open(sys.argv[1]))["repository"] if r.startswith("github:")][0].replace("/", "+"))' "$reg/modules/$name/metadata.json")}/repo"
  tree="${3:-v$ver}"
  git --git-dir="$git" rev-parse -q --verify "$tree" >/dev/null || tree="$ver"
  if grep -h '^+++ ' "$v"/patches/* 2>/dev/null | grep -qv 'MODULE\.bazel'; then
    echo "online_check: $name@$ver has BCR patches beyond MODULE.bazel" >&2; return 1
  fi
  prefix="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("strip_prefix", ""))' "$v/source.json")"
  tmp="$WORK/tmp/$name/$prefix" && rm -rf "$WORK/tmp" && mkdir -p "$tmp"
  git --git-dir="$git" archive "$tree" -- . ':!examples' ':!e2e' | tar -xf - -C "$tmp"
  cp "$v/MODULE.bazel" "$tmp/MODULE.bazel"
  { grep -rlZ --include='*.bzl' 'native\.bazel_version' "$tmp" || true; } | xargs -0r sed -i 's/native\.bazel_version/(native.bazel_version or "7.7.1")/g'
  if [[ "$name" == rules_kotlin ]]; then
    find "$tmp" -name '*.release.*' | while read -r f; do mv "$f" "${f/.release./.}"; done
  fi
  tar -czf "$src/$name-$ver.tar.gz" --sort=name --mtime=@0 -C "$WORK/tmp/$name" .
  python3 - "$v/source.json" "$src/$name-$ver.tar.gz" <<'EOF'
import base64, hashlib, json, sys
sj = {k: v for k, v in json.load(open(sys.argv[1])).items() if k not in ("patches", "patch_strip", "mirror_urls")}
sj["url"] = "file://" + sys.argv[2]
sj["integrity"] = "sha256-" + base64.b64encode(hashlib.sha256(open(sys.argv[2], "rb").read()).digest()).decode()
json.dump(sj, open(sys.argv[1], "w"), indent=2)
EOF
}

# The modules a build of //... fetches (bazel mod graph shows the whole graph). The versions
# raised by the C++ client's grpc pin and rules_go/rules_perl (registered toolchains) were added
# from the resolver's listing without a rerun here (tools/BCR_AUDIT.md, section 5).
while read -r m; do
  # shellcheck disable=SC2086 # the fields are meant to split
  localize $m
done <<'EOF'
apple_support 1.24.2 1.24.2
aspect_bazel_lib 2.21.2 v2.21.2 bazel-contrib+bazel-lib
bazel_features 1.34.0
bazel_lib 3.0.0 v3.0.0 bazel-contrib+bazel-lib
bazel_skylib 1.8.2 1.8.2
buildozer 7.1.2
googletest 1.15.2
googletest 1.17.0
jq.bzl 0.1.0
package_metadata 0.0.7 v0.0.7:metadata bazel-contrib+supply-chain
platforms 1.1.0 1.1.0
protobuf 33.6
pybind11_bazel 2.12.0
rules_apple 4.1.0 4.1.0
rules_cc 0.2.17 0.2.17
rules_go 0.58.3
rules_java 8.16.1 8.16.1
rules_jvm_external 6.7 6.7
rules_kotlin 1.9.6 v1.9.6 bazelbuild+rules_kotlin
rules_license 1.0.0 1.0.0
rules_oci 2.3.0 v2.3.0 bazel-contrib+rules_oci
rules_perl 0.2.4 0.2.4 bazel-contrib+rules_perl
rules_proto 7.1.0 7.1.0
rules_proto_grpc 5.8.0 5.8.0:modules/core
rules_proto_grpc_cpp 5.8.0 5.8.0:modules/cpp rules-proto-grpc+rules_proto_grpc
rules_python 2.3.2 2.3.2 bazel-contrib+rules_python
rules_rust 0.66.0 0.66.0
rules_shell 0.8.0
rules_swift 3.1.2 3.1.2
stardoc 0.7.2 0.7.2
tar.bzl 0.7.0
toml.bzl 0.4.1 HEAD
toolchains_protoc 0.5.0
EOF

# Analysis-only stand-ins: repo name, tool file, BUILD body.
overrides=()
stub() {
  mkdir -p "$st/$1" && touch "$st/$1/REPO.bazel"
  printf '#!/bin/sh\nexec "$@"\n' >"$st/$1/$2" && chmod +x "$st/$1/$2"
  printf '%s\n' "$3" >"$st/$1/BUILD.bazel"
  overrides+=("--override_repository=$1=$st/$1")
}
abl=aspect_bazel_lib~~toolchains~
stub bazel_lib~~toolchains~bats_toolchains x ''
stub ${abl}bats_toolchains x ''
for t in coreutils copy_to_directory copy_directory expand_template jq; do
  attr=bin && [[ "$t" == coreutils ]] && attr=binary
  stub "$abl${t}_linux_amd64" "$t" "load(\"@aspect_bazel_lib//lib/private:${t}_toolchain.bzl\", \"${t}_toolchain\")
${t}_toolchain(name = \"${t}_toolchain\", $attr = \"$t\", visibility = [\"//visibility:public\"])"
done
stub ${abl}zstd_linux_amd64 zstd 'load("@aspect_bazel_lib//lib/private:zstd_toolchain.bzl", "zstd_toolchain")
zstd_toolchain(name = "zstd_toolchain", binary = "zstd", visibility = ["//visibility:public"])'
stub tar.bzl~~toolchains~bsd_tar_toolchains_linux_amd64 tar 'load("@tar.bzl//tar/toolchain:toolchain.bzl", "tar_toolchain")
tar_toolchain(name = "bsdtar_toolchain", binary = "tar", visibility = ["//visibility:public"])'
stub rules_oci~~oci~oci_regctl_linux_amd64 regctl 'load("@rules_oci//oci:toolchain.bzl", "regctl_toolchain")
regctl_toolchain(name = "regctl_toolchain", regctl = "regctl", visibility = ["//visibility:public"])'
stub rules_oci~~oci~python_base oci-layout 'load("@aspect_bazel_lib//lib:copy_to_directory.bzl", "copy_to_directory")
copy_to_directory(name = "python_base", srcs = ["oci-layout"], out = "layout", visibility = ["//visibility:public"])
filegroup(name = "digest", srcs = ["oci-layout"], visibility = ["//visibility:public"])'
py=rules_python~~python~python_3_14_x86_64-unknown-linux-gnu
stub "$py" STANDALONE_INTERPRETER 'load("@rules_python//python/private:hermetic_runtime_repo_setup.bzl", "define_hermetic_runtime_toolchain_impl")
package(default_visibility = ["//visibility:public"])
define_hermetic_runtime_toolchain_impl(name = "define_runtime", extra_files_glob_include = ["lib/**"],
    extra_files_glob_exclude = [], python_version = "3.14.4", python_bin = "bin/python3", coverage_tool = None)'
mkdir -p "$st/$py/bin" && ln -s /usr/bin/python3.14 "$st/$py/bin/python3" && ln -s bin/python3 "$st/$py/python"

cd "$ws"
bazel=("$top/tools/debian_root/root.sh" run bazel --nosystem_rc --install_base=/usr/share/bazel
  --trust_install_base "--output_user_root=$WORK/out")
# The server caches registry files: never let one outlive this run's registry copy.
trap '"${bazel[@]}" shutdown 2>/dev/null || true' EXIT
flags=("--registry=file://$reg" --check_direct_dependencies=error --disk_cache= "${overrides[@]}")
"${bazel[@]}" mod graph "${flags[@]}" >"$WORK/graph.txt"
"${bazel[@]}" build --nobuild "${flags[@]}" -- "${@:-//...}"
echo "online_check: resolved graph in $WORK/graph.txt; analysis passed"
