#!/bin/sh
# rules_proto_grpc's fixer and merger are Rust programs for languages whose plugins write
# one output per package; the Python plugins never need them, and building them would pull
# a Rust toolchain into every build. If a plugin ever calls one, say so instead of guessing.
echo "tools/proto: rules_proto_grpc called its fixer/merger ($*), which Python plugins never need" >&2
exit 1
