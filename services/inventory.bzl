"""The services of this repository: the one list that everything else reads.

Each entry, by service name (the directory under services/, the binary, the image, the
Kubernetes Deployment and the PostgreSQL role):
  port:     its gRPC port (process runs, images, manifests, the local runner's order).
  database: its own PostgreSQL database.
  proto:    its proto package directory, protos/<proto>/v1 (a first-party import name).
  calls:    the services it calls with its own service token; each of them trusts its key.
            (Fetching authsvc's public keys needs no token and is not listed.)
  issues_tokens: True for the one service that signs the users' access tokens and serves
            their public keys (GetJwks); every service finds it through this fact, not
            by its name.

Bazel loads this file (BUILD files, tools/service/defs.bzl); Python reads the same data
through //services:inventory_json (libs/inventory). What is generated from it (kustomize
entries, the postgres init script, tools/k3d/k3d.sh's list, ruff's first-party list) is
rewritten by `tools/bazel run //tools/inventory:sync`, and //tools/inventory:sync_test fails
while any of it is stale. `tools/bazel run //tools/new_service -- NAME` adds an entry.
"""

SERVICES = {
    "usersvc": {
        "port": 50051,
        "database": "users_db",
        "proto": "user",
        "calls": ["authsvc"],
    },
    "paymentsvc": {
        "port": 50052,
        "database": "payments_db",
        "proto": "payment",
        "calls": ["usersvc"],
    },
    "authsvc": {
        "port": 50053,
        "database": "auth_db",
        "proto": "auth",
        "calls": ["usersvc"],
        "issues_tokens": True,
    },
}
