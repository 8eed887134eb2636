from __future__ import annotations

from dataclasses import dataclass

from libs import inventory
from libs.platform import config as c
from libs.platform.auth.settings import ServiceIdentitySettings
from libs.platform.settings import ServiceSettings


# What every service reads (DATABASE_URL, GRPC_*, LOG_LEVEL, DB_*, TLS, OVERLOAD_*, RETRY_*) comes from
# ServiceSettings; SERVICE_KEY_FILE (calls to usersvc) and TRUSTED_SERVICE_KEYS (usersvc's
# key, for RevokeUserSessions) from ServiceIdentitySettings.
@dataclass(frozen=True)
class Settings(ServiceSettings, ServiceIdentitySettings):
    grpc_port: int = c.grpc_port(inventory.service("authsvc").port)
    usersvc_addr: str = c.address(inventory.service("usersvc").local_address)
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
    # RefreshToken and Logout per caller address (in process memory: per replica and
    # worker): this many at once, refilled at this rate.
    token_call_burst: int = c.setting(60, min=1, max=100000)
    token_calls_per_second: float = c.setting(10.0, min=0.01, max=100000.0)
    # How long a device token (devices.py) marks its device as the account's own.
    login_device_token_days: float = c.setting(365.0, min=0.01, max=3650.0)
