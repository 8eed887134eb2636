"""Test support for authentication and TLS: keys, tokens, a JWKS server, certificates.

Everything is generated at test time; nothing secret is committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform.auth.keys import jwk_x, private_pem, public_pem
from libs.platform.auth.service_tokens import BearerClientInterceptor, ServiceTokenSigner
from libs.platform.rpc_types import Context

ISSUER = "authsvc"
AUDIENCE = "micro"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class ServiceKeys:
    """Per-service Ed25519 keys on disk: `<dir>/<name>.key` private, `trusted/<name>.pem`."""

    directory: Path
    private: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    @property
    def trusted_dir(self) -> Path:
        return self.directory / "trusted"

    def add(self, name: str, *, trusted: bool = True) -> Path:
        key = Ed25519PrivateKey.generate()
        self.private[name] = key
        path = self.directory / f"{name}.key"
        path.write_bytes(private_pem(key))
        if trusted:
            self.trusted_dir.mkdir(parents=True, exist_ok=True)
            (self.trusted_dir / f"{name}.pem").write_bytes(public_pem(key.public_key()))
        return path

    def key_file(self, name: str) -> str:
        return str(self.directory / f"{name}.key")

    def token(self, name: str, audience: str) -> str:
        return ServiceTokenSigner(name, self.private[name]).token_for(audience)

    def channel(self, port: int, *, caller: str, audience: str) -> grpc.aio.Channel:
        """A loopback channel whose every call carries `caller`'s service token."""
        signer = ServiceTokenSigner(caller, self.private[caller])
        return grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=[BearerClientInterceptor(signer, audience)]
        )


class FakeJwksServer(auth_pb2_grpc.AuthServiceServicer):
    """Stands in for authsvc's GetJwks (the real one is tested in authsvc and e2e) and mints
    user tokens with keys the test controls, so rotation and tampering can be staged."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.active = ""
        self.calls = 0
        self.port = 0
        self._server: grpc.aio.Server | None = None
        # RevokeUserSessions calls: (request, authorization metadata); set `revoke_fails`
        # to a status code to stage an authsvc that cannot take them.
        self.revocations: list[tuple[auth_pb2.RevokeUserSessionsRequest, str]] = []
        self.revoke_fails: grpc.StatusCode | None = None

    def rotate(self) -> str:
        key = Ed25519PrivateKey.generate()
        kid = uuid.uuid4().hex[:16]
        self.keys[kid] = key
        self.active = kid
        return kid

    def mint(
        self,
        sub: str,
        *,
        kid: str | None = None,
        key: Ed25519PrivateKey | None = None,
        ttl: int = 900,
        **claims: Any,
    ) -> str:
        kid = kid or self.active
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl}
        body.update(claims)
        signing_key = key or self.keys[kid]
        return jwt.encode(body, signing_key, algorithm="EdDSA", headers={"kid": kid})

    async def GetJwks(  # noqa: N802
        self, request: auth_pb2.GetJwksRequest, context: Context
    ) -> auth_pb2.GetJwksResponse:
        self.calls += 1
        return auth_pb2.GetJwksResponse(
            keys=[
                auth_pb2.Jwk(
                    kty="OKP", crv="Ed25519", x=jwk_x(k.public_key()), kid=kid, alg="EdDSA"
                )
                for kid, k in self.keys.items()
            ]
        )

    async def RevokeUserSessions(  # noqa: N802
        self, request: auth_pb2.RevokeUserSessionsRequest, context: Context
    ) -> auth_pb2.RevokeUserSessionsResponse:
        if self.revoke_fails is not None:
            await context.abort(self.revoke_fails, "authsvc is restarting")
        authorization = dict(context.invocation_metadata() or ()).get("authorization", "")
        assert isinstance(authorization, str)  # only `-bin` metadata carries bytes
        self.revocations.append((request, authorization))
        return auth_pb2.RevokeUserSessionsResponse(revoked_tokens=1)

    async def start(self, port: int = 0) -> FakeJwksServer:
        """Serves on loopback: on `port` when a harness wired it there, else on a free one."""
        self._server = grpc.aio.server()
        auth_pb2_grpc.add_AuthServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certs(directory: Path) -> Certs:
    """A throwaway CA plus a server cert for localhost/127.0.0.1 and a client cert."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("micro test CA"))
        .issuer_name(_name("micro test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, sans: list[x509.GeneralName]) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    server, server_key = leaf(
        "localhost",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client, client_key = leaf("paymentsvc", [x509.DNSName("paymentsvc")])
    certs = Certs(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    pem = serialization.Encoding.PEM
    certs.ca.write_bytes(ca.public_bytes(pem))
    certs.server_cert.write_bytes(server.public_bytes(pem))
    _write_key(server_key, certs.server_key)
    certs.client_cert.write_bytes(client.public_bytes(pem))
    _write_key(client_key, certs.client_key)
    return certs


@dataclass
class HostileTally:
    """Counts hostile inputs a suite tried and how each was answered, for its summary."""

    by_code: dict[str, int] = field(default_factory=dict)

    def record(self, code: grpc.StatusCode, label: str | None = None) -> None:
        # OK means the input was legal text and the test checked it was stored verbatim.
        name = label or ("STORED_VERBATIM" if code == grpc.StatusCode.OK else code.name)
        self.by_code[name] = self.by_code.get(name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_code.values())

    def summary(self) -> str:
        codes = ", ".join(f"{k}={v}" for k, v in sorted(self.by_code.items()))
        return f"hostile inputs tried: {self.total} ({codes})"


HOSTILE = HostileTally()


def report_hostile(terminalreporter: Any) -> None:
    """Call from a conftest's pytest_terminal_summary."""
    if HOSTILE.total:
        terminalreporter.write_line(HOSTILE.summary())


async def expect_refused(
    coro: Any, *codes: grpc.StatusCode, hostile: bool = True
) -> grpc.aio.AioRpcError:
    """Await an RPC that must fail with one of `codes` (never INTERNAL); tally it."""
    try:
        await coro
    except grpc.aio.AioRpcError as err:
        assert err.code() in codes, f"{err.code()}: {err.details()}"
        if hostile:
            HOSTILE.record(err.code())
        return err
    raise AssertionError(f"accepted; expected one of {[c.name for c in codes]}")


# Strings that break naive SQL, LIKE patterns, escapes and C strings.
SQL_METACHARACTERS = (
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    '"; DROP TABLE payments; --',
    "%",
    "_",
    "\\",
    "\\'",
    "$1",
    "%s",
    "' UNION SELECT password_hash FROM users --",
    "ünïcödé ✓",
    "\x00",
    "a\x00b",
)
