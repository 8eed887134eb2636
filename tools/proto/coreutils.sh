#!/bin/sh
# Minimal coreutils toolchain for rules_proto_grpc, which only ever calls `cp SRC DEST`.
# The host's coreutils do the job without downloading a prebuilt multi-call binary.
exec "$@"
