"""Transport settings shared by every service: TLS / mTLS and message-size limits.

Server side: TLS_CERT_FILE + TLS_KEY_FILE turn TLS on for the listener (plaintext is then
refused); TLS_CLIENT_CA_FILE additionally requires a client certificate signed by that CA
(mTLS). Client side (calls to other services): TLS_CA_FILE turns TLS on and names the CA to
trust; TLS_CLIENT_CERT_FILE + TLS_CLIENT_KEY_FILE present a client certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from libs.platform import config as c

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


class TlsConfigError(Exception):
    pass


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read {name} {path!r}: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class TransportSettings:
    tls_cert_file: str | None = c.setting(None)
    tls_key_file: str | None = c.setting(None)
    tls_client_ca_file: str | None = c.setting(None)
    tls_ca_file: str | None = c.setting(None)
    tls_client_cert_file: str | None = c.setting(None)
    tls_client_key_file: str | None = c.setting(None)
    # Applies to both directions on servers and on channels to other services.
    grpc_max_message_bytes: int = c.setting(DEFAULT_MAX_MESSAGE_BYTES, min=1024, max=64 << 20)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert_file and not self.tls_key_file:
            if self.tls_client_ca_file:
                raise TlsConfigError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
            return None
        if not (self.tls_cert_file and self.tls_key_file):
            raise TlsConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        pair = (
            _read(self.tls_key_file, "TLS_KEY_FILE"),
            _read(self.tls_cert_file, "TLS_CERT_FILE"),
        )
        client_ca = (
            _read(self.tls_client_ca_file, "TLS_CLIENT_CA_FILE")
            if self.tls_client_ca_file
            else None
        )
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls_ca_file:
            if self.tls_client_cert_file or self.tls_client_key_file:
                raise TlsConfigError("TLS_CLIENT_CERT_FILE/TLS_CLIENT_KEY_FILE need TLS_CA_FILE")
            return None
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise TlsConfigError("TLS_CLIENT_CERT_FILE and TLS_CLIENT_KEY_FILE go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.tls_ca_file, "TLS_CA_FILE"),
            private_key=(
                _read(self.tls_client_key_file, "TLS_CLIENT_KEY_FILE")
                if self.tls_client_key_file
                else None
            ),
            certificate_chain=(
                _read(self.tls_client_cert_file, "TLS_CLIENT_CERT_FILE")
                if self.tls_client_cert_file
                else None
            ),
        )

    def check(self) -> None:
        """Fail at start, not at the first call, when the TLS files are wrong."""
        self.server_credentials()
        self.channel_credentials()


def message_size_options(max_bytes: int) -> Sequence[tuple[str, Any]]:
    return (
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    )
