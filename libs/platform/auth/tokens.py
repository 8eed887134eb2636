"""The token format that signers and verifiers agree on."""

from __future__ import annotations

AUTHORIZATION_HEADER = "authorization"
ALGORITHM = "EdDSA"
# `iss` and `sub` of a service token: the prefix, then the service's name.
SERVICE_PREFIX = "service:"
