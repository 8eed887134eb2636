from __future__ import annotations

from dataclasses import dataclass

import pytest

from libs.platform import config as c
from libs.platform.config import ConfigError, load_settings
from libs.platform.runner import ProcessSettings
from libs.platform.settings import ServiceSettings


@dataclass(frozen=True)
class Demo:
    database_url: str = c.database_url()
    grpc_port: int = c.grpc_port(50051)
    log_level: str = c.log_level()
    usersvc_addr: str = c.address("localhost:50051")
    timeout: float = c.setting(2.0, min=0.1)
    optional: int | None = c.setting(None, min=1)
    debug: bool = c.setting(False)


def test_defaults_and_conversion() -> None:
    s = load_settings(
        Demo,
        {
            "DATABASE_URL": "postgresql://x/y",
            "GRPC_PORT": "0",
            "LOG_LEVEL": "debug",
            "OPTIONAL": "3",
            "DEBUG": "true",
        },
    )
    assert s == Demo("postgresql://x/y", 0, "DEBUG", "localhost:50051", 2.0, 3, True)


def test_all_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            Demo,
            {
                "GRPC_PORT": "http",
                "LOG_LEVEL": "LOUD",
                "USERSVC_ADDR": "nohost",
                "TIMEOUT": "0",
                "DEBUG": "maybe",
            },
        )
    msg = str(info.value)
    assert "DATABASE_URL is required" in msg
    assert "GRPC_PORT: expected an integer, got 'http'" in msg
    assert "LOG_LEVEL: must be one of" in msg
    assert "USERSVC_ADDR: must be host:port" in msg
    assert "TIMEOUT: must be >= 0.1" in msg
    assert "DEBUG: expected a boolean" in msg


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql:// URL"),
        ({"DATABASE_URL": "postgresql://x", "GRPC_PORT": "70000"}, "GRPC_PORT: must be <= 65535"),
        ({"DATABASE_URL": "postgresql://x", "GRPC_PORT": "-1"}, "GRPC_PORT: must be >= 0"),
        ({"DATABASE_URL": "  "}, "DATABASE_URL is required"),
    ],
)
def test_single_problem(env, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(Demo, env)


def test_metrics_address_defaults_to_loopback_and_must_be_an_ip() -> None:
    # /metrics has no authentication: only an explicit setting opens it beyond this host.
    assert load_settings(ProcessSettings, {}).metrics_address == "127.0.0.1"
    for address in ("0.0.0.0", "::", "::1", "10.1.2.3"):  # noqa: S104 - what is being parsed
        assert load_settings(ProcessSettings, {"METRICS_ADDRESS": address}).metrics_address == (
            address
        )
    for bad in ("localhost", "0.0.0.0:9090", "[::1]", "256.1.1.1"):
        with pytest.raises(ConfigError, match="METRICS_ADDRESS: must be an IP address"):
            load_settings(ProcessSettings, {"METRICS_ADDRESS": bad})


@dataclass(frozen=True)
class OneService(ServiceSettings):
    grpc_port: int = c.grpc_port(50099)
    own: str = c.setting("mine")


def test_service_settings_are_shared_and_the_port_is_each_services_own() -> None:
    s = load_settings(OneService, {"DATABASE_URL": "postgresql://x/y", "LOG_LEVEL": "warning"})
    assert (s.grpc_port, s.grpc_host, s.log_level, s.own) == (50099, "[::]", "WARNING", "mine")
    assert (s.db_pool_max_size, s.db_acquire_timeout_seconds) == (10, 1.0)
    with pytest.raises(ConfigError, match="DB_POOL_MAX_SIZE: must be <= 200"):
        load_settings(OneService, {"DATABASE_URL": "postgresql://x/y", "DB_POOL_MAX_SIZE": "500"})


def test_service_settings_alone_require_a_port() -> None:
    with pytest.raises(ConfigError, match="GRPC_PORT is required"):
        load_settings(ServiceSettings, {"DATABASE_URL": "postgresql://x/y"})


def test_the_token_issuers_address_is_read_from_its_own_variable() -> None:
    from libs import inventory
    from libs.platform.auth.settings import TokenSettings

    issuer = inventory.token_issuer()
    variable = f"{issuer.env_prefix}_ADDR"
    assert c.env_names(TokenSettings)["token_issuer_addr"] == variable
    assert load_settings(TokenSettings, {variable: "10.0.0.9:7"}).token_issuer_addr == "10.0.0.9:7"
    assert load_settings(TokenSettings, {}).token_issuer_addr == issuer.local_address
    with pytest.raises(ConfigError, match=f"{variable}: must be host:port"):
        load_settings(TokenSettings, {variable: "nohost"})
