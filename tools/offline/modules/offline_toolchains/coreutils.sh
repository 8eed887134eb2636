#!/bin/sh
# The coreutils toolchain rules_proto_grpc asks for, which only ever calls `coreutils cp SRC
# DEST`: the root's own coreutils do that without a prebuilt multi-call binary to download.
exec "$@"
