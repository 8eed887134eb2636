from __future__ import annotations

from dataclasses import dataclass

from libs import inventory
from libs.platform import config as c
from libs.platform.auth.settings import TokenSettings
from libs.platform.settings import ServiceSettings
from services.paymentsvc.currencies import ACTIVE_CURRENCIES


def _check_currency(value: str) -> str | None:
    return None if value in ACTIVE_CURRENCIES else f"{value!r} is not an active ISO 4217 code"


# What every service reads comes from ServiceSettings; token verification and
# SERVICE_KEY_FILE (for calls to usersvc) from TokenSettings.
@dataclass(frozen=True)
class Settings(ServiceSettings, TokenSettings):
    grpc_port: int = c.grpc_port(inventory.service("paymentsvc").port)
    default_currency: str = c.setting("USD", check=_check_currency)
    usersvc_addr: str = c.address(inventory.service("usersvc").local_address)
    usersvc_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)
    # The largest payment, in major units of its currency (1 JPY, 1 KWD, 1 USD alike).
    payment_max_major_units: int = c.setting(1_000_000_000, min=1, max=10**12)
    # CreatePayment per user (in process memory: per replica and worker): this many at
    # once, refilled at this rate; 0 per second: no limit. Services acting for users are
    # not limited.
    payment_burst: int = c.setting(60, min=1, max=1_000_000)
    payments_per_second: float = c.setting(10.0, min=0.0, max=1_000_000.0)
