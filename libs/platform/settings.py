"""The settings every service reads; a service's config.py adds only its own.

@dataclass(frozen=True)
class Settings(ServiceSettings, TokenSettings):
    # Required here, so each service states its own default (services/inventory.bzl).
    grpc_port: int = c.grpc_port(inventory.service("usersvc").port)
    usersvc_addr: str = ...
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.platform import config as c
from libs.platform.overload.settings import OverloadSettings
from libs.platform.tls import TransportSettings


@dataclass(frozen=True, kw_only=True)
class ServiceSettings(TransportSettings, OverloadSettings):
    database_url: str = c.database_url()
    grpc_port: int = c.setting(min=0, max=65535)
    grpc_host: str = c.setting("[::]")
    log_level: str = c.log_level()
    db_pool_max_size: int = c.setting(10, min=1, max=200)
    # Short: during a database outage callers get UNAVAILABLE fast instead of waiting.
    db_acquire_timeout_seconds: float = c.setting(1.0, min=0.05)
