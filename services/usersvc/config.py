from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c
from libs.platform.auth import TokenSettings
from libs.platform.tls import TransportSettings


# Token verification (AUTHSVC_ADDR, TRUSTED_SERVICE_KEYS, ...) and TLS come from the mixins.
@dataclass(frozen=True)
class Settings(TransportSettings, TokenSettings):
    database_url: str = c.database_url()
    grpc_port: int = c.grpc_port(50051)
    grpc_host: str = c.setting("[::]")
    log_level: str = c.log_level()
    db_pool_max_size: int = c.setting(10, min=1, max=200)
    # Short: during a database outage callers get UNAVAILABLE fast instead of waiting.
    db_acquire_timeout_seconds: float = c.setting(1.0, min=0.05)
    # Unset means argon2-cffi's defaults (the production setting); tests lower them.
    argon2_time_cost: int | None = c.setting(None, min=1)
    argon2_memory_kib: int | None = c.setting(None, min=8)
    argon2_parallelism: int | None = c.setting(None, min=1)
