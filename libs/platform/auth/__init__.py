"""Bearer-token authentication shared by the services that verify callers.

Two kinds of callers carry an EdDSA (Ed25519) JWT in `authorization: Bearer <jwt>`:

* users, with an access token from authsvc (`iss`=AUTH_ISSUER, `aud`=AUTH_AUDIENCE, `kid`
  names one of authsvc's keys, fetched from its GetJwks RPC and cached: jwks.py);
* services, with a short-lived token each calling service signs with its own private key
  (SERVICE_KEY_FILE, service_tokens.py): `iss`=`sub`=`service:<name>`, `aud`=<callee>. The
  callee trusts the public keys in TRUSTED_SERVICE_KEYS (a directory of `<name>.pem`
  files, keys.py), nothing else.

The interceptor (verification.py) verifies the token and puts the Principal
(principals.py) in a contextvar for handlers; settings.py reads the environment and wires
the pieces together.
"""
