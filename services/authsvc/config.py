from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c


@dataclass(frozen=True)
class Settings:
    database_url: str = c.database_url()
    grpc_port: int = c.grpc_port(50053)
    grpc_host: str = c.setting("[::]")
    log_level: str = c.log_level()
    db_pool_max_size: int = c.setting(10, min=1, max=200)
    db_acquire_timeout_seconds: float = c.setting(5.0, min=0.1)
    usersvc_addr: str = c.address("localhost:50051")
    usersvc_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)
    # PEM Ed25519 private key; unset means an ephemeral key (development only).
    auth_signing_key_file: str | None = c.setting(None)
    auth_issuer: str = c.setting("authsvc")
    auth_audience: str = c.setting("micro")
    access_token_ttl_seconds: int = c.setting(900, min=10, max=86400)
    refresh_token_ttl_seconds: int = c.setting(30 * 86400, min=60)
