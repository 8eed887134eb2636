from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c
from libs.platform.auth import TokenSettings
from libs.platform.overload.settings import OverloadSettings
from libs.platform.tls import TransportSettings
from services.paymentsvc.currencies import ACTIVE_CURRENCIES


def _check_currency(value: str) -> str | None:
    return None if value in ACTIVE_CURRENCIES else f"{value!r} is not an active ISO 4217 code"


# Token verification, SERVICE_KEY_FILE (for calls to usersvc), TLS and overload protection
# (OVERLOAD_*, RETRY_*) come from the mixins.
@dataclass(frozen=True)
class Settings(TransportSettings, OverloadSettings, TokenSettings):
    database_url: str = c.database_url()
    grpc_port: int = c.grpc_port(50052)
    grpc_host: str = c.setting("[::]")
    log_level: str = c.log_level()
    db_pool_max_size: int = c.setting(10, min=1, max=200)
    # Short: during a database outage callers get UNAVAILABLE fast instead of waiting.
    db_acquire_timeout_seconds: float = c.setting(1.0, min=0.05)
    default_currency: str = c.setting("USD", check=_check_currency)
    usersvc_addr: str = c.address("localhost:50051")
    usersvc_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)
