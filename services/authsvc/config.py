from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c
from libs.platform.auth import ServiceIdentitySettings
from libs.platform.overload.settings import OverloadSettings
from libs.platform.tls import TransportSettings


# Transport (TLS_*, GRPC_MAX_MESSAGE_BYTES), SERVICE_KEY_FILE (calls to usersvc),
# TRUSTED_SERVICE_KEYS (usersvc's key, for RevokeUserSessions) and overload protection
# (OVERLOAD_*, RETRY_*) come from the mixins.
@dataclass(frozen=True)
class Settings(TransportSettings, OverloadSettings, ServiceIdentitySettings):
    database_url: str = c.database_url()
    grpc_port: int = c.grpc_port(50053)
    grpc_host: str = c.setting("[::]")
    log_level: str = c.log_level()
    db_pool_max_size: int = c.setting(10, min=1, max=200)
    # Short: during a database outage callers get UNAVAILABLE fast instead of waiting.
    db_acquire_timeout_seconds: float = c.setting(1.0, min=0.05)
    usersvc_addr: str = c.address("localhost:50051")
    usersvc_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)
    # PEM Ed25519 private key; unset means an ephemeral key (development only).
    auth_signing_key_file: str | None = c.setting(None)
    # Comma-separated PEM files (or directories of *.pem): retired keys that still verify.
    auth_verification_key_files: str | None = c.setting(None)
    auth_issuer: str = c.setting("authsvc")
    auth_audience: str = c.setting("micro")
    access_token_ttl_seconds: int = c.setting(900, min=10, max=86400)
    refresh_token_ttl_seconds: int = c.setting(30 * 86400, min=60)
    # Login throttling (throttle.py, README.md). Per (account, address): free failures, then
    # a wait doubling from the base to the max after each further one, remembered this long.
    login_free_failures: int = c.setting(5, min=1, max=1000)
    login_backoff_base_seconds: float = c.setting(1.0, min=0.001, max=3600.0)
    login_backoff_max_seconds: float = c.setting(900.0, min=0.001, max=86400.0)
    login_pair_memory_seconds: int = c.setting(86400, min=1, max=30 * 86400)
    # Ceilings per account (all addresses) and per address (all accounts), except from
    # addresses the account logged in from within LOGIN_KNOWN_ADDRESS_DAYS.
    login_max_failures_per_account: int = c.setting(100, min=1, max=100000)
    login_account_window_seconds: int = c.setting(86400, min=1, max=30 * 86400)
    login_max_failures_per_address: int = c.setting(50, min=1, max=100000)
    login_throttle_window_seconds: int = c.setting(900, min=1, max=86400)
    login_known_address_days: float = c.setting(30.0, min=0.0, max=365.0)
