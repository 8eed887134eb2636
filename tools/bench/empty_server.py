"""Bench-only ceiling: the platform server stack with a GetUser that never touches a database.

Same bootstrap (libs/platform/server.py), same interceptors and the same runner (so WORKERS
applies) as usersvc; the handler returns a constant response naming the worker's pid, which
tells the bench and tests which worker process answered.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from typing import Any

import grpc

from libs.platform import config as c
from libs.platform.protoutil import timestamp
from libs.platform.runner import run_main
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from user.v1 import user_pb2, user_pb2_grpc

SERVICE_NAME = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Settings:
    grpc_port: int = c.grpc_port(50061)
    grpc_host: str = c.setting("127.0.0.1")
    log_level: str = c.log_level()
    # When set, calls must carry an authsvc token, verified exactly as usersvc does.
    authsvc_addr: str | None = c.setting(None)


class EmptyUserService(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self._response = user_pb2.GetUserResponse(
            user_id="00000000-0000-4000-8000-000000000000",
            email="bench@example.com",
            display_name=f"pid {os.getpid()}",
            created_at=timestamp(_EPOCH),
            updated_at=timestamp(_EPOCH),
        )

    async def GetUser(  # noqa: N802 - gRPC method names
        self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.GetUserResponse:
        return self._response


def _auth_interceptors(settings: Settings) -> list[Any]:
    if not settings.authsvc_addr:
        return []
    # Imported only when asked for: the auth module is optional for this ceiling.
    from auth.v1 import auth_pb2_grpc
    from libs.platform.auth.settings import TokenSettings
    from libs.platform.auth.verification import AuthInterceptor
    from libs.platform.config import load_settings

    token_settings = load_settings(TokenSettings)
    channel = grpc.aio.insecure_channel(settings.authsvc_addr)
    verifier = token_settings.verifier("usersvc", auth_pb2_grpc.AuthServiceStub(channel))
    return [AuthInterceptor(verifier)]


async def start(settings: Settings) -> GrpcServer:
    return await start_server(
        [
            ServiceRegistration(
                SERVICE_NAME, user_pb2_grpc.add_UserServiceServicer_to_server, EmptyUserService()
            )
        ],
        host=settings.grpc_host,
        port=settings.grpc_port,
        interceptors=_auth_interceptors(settings),
    )


def main() -> int:
    return run_main("empty_server", Settings, start)


if __name__ == "__main__":
    sys.exit(main())
