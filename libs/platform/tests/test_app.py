"""Wiring: what start() opened is closed on failure, and handed to the app on success."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.platform.app import ServiceApp, Wiring
from libs.platform.overload.settings import OverloadSettings
from libs.platform.server import ServiceRegistration
from libs.platform.tls import TransportSettings
from user.v1 import user_pb2, user_pb2_grpc


@dataclass(frozen=True, kw_only=True)
class Settings(TransportSettings, OverloadSettings):
    database_url: str
    db_pool_max_size: int = 2
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "0001_init.sql").write_text("CREATE TABLE wired (id int PRIMARY KEY);")
    return tmp_path


def registration() -> ServiceRegistration:
    full_name = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
    return ServiceRegistration(
        full_name,
        user_pb2_grpc.add_UserServiceServicer_to_server,
        user_pb2_grpc.UserServiceServicer(),
    )


async def test_failure_closes_pool_and_channels(database_url: str, migrations: Path) -> None:
    with pytest.raises(RuntimeError, match="servicer"):
        async with Wiring(Settings(database_url=database_url), migrations) as wiring:
            pool = wiring.pool
            channel = wiring.channel("127.0.0.1:1")
            raise RuntimeError("servicer could not be built")
    assert pool.is_closing()
    with pytest.raises(grpc.aio.UsageError):
        # Raw bytes, no serializer: the call must fail before it starts.
        await channel.unary_unary("/x.Y/Z")(b"", timeout=1)


async def test_handed_over_app_serves_then_closes(database_url: str, migrations: Path) -> None:
    async with Wiring(Settings(database_url=database_url), migrations) as wiring:
        server = await wiring.serve(registration())
        app = ServiceApp(server, wiring.pool, wiring.hand_over())
    # Leaving the block normally must not close what the app now owns.
    assert await app.pool.fetchval("SELECT count(*) FROM wired") == 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await app.stop(0)
    assert app.pool.is_closing()
