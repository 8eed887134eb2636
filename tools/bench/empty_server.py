"""Bench-only ceilings: the platform server stack with handlers that never touch a database.

Same bootstrap (libs/platform/server.py), same interceptors, overload protection and runner
(so WORKERS applies) as the services. Two roles:

* by default, a UserService whose GetUser returns a constant response naming the worker's
  pid (which tells the bench and tests which worker process answered): GetUser's ceiling;
* with CHAIN_TO set, a PaymentService whose CreatePayment makes one GetUser call to
  CHAIN_TO (an empty server of the first role) over a channel with the services' client
  interceptors, then returns a constant response: CreatePayment's two-hop ceiling, since a
  payment is always a call to paymentsvc that calls usersvc.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from typing import Any

import grpc

from libs.platform import clients
from libs.platform import config as c
from libs.platform.overload.retries import RetryCollector, RetryInterceptor, RetryStats
from libs.platform.overload.settings import OverloadSettings
from libs.platform.protoutil import timestamp
from libs.platform.rpc_types import Context
from libs.platform.runner import run_main
from libs.platform.server import GrpcServer, ServiceRegistration, start_server
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
PAYMENT_SERVICE = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name
_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
_NOBODY = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Settings(OverloadSettings):
    grpc_port: int = c.grpc_port(50061)
    grpc_host: str = c.setting("127.0.0.1")
    log_level: str = c.log_level()
    # When true, calls must carry a user token, verified exactly as the services do (the
    # issuer's address and the trusted keys as TokenSettings reads them).
    verify_tokens: bool = c.setting(False)
    # When set, serve CreatePayment as the first hop of a chain to this address.
    chain_to: str | None = c.setting(None, check=c.check_address)
    # The next hop's timeout, as paymentsvc's USERSVC_TIMEOUT_SECONDS.
    chain_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)


class EmptyUserService(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self._response = user_pb2.GetUserResponse(
            user_id=_NOBODY,
            email="bench@example.com",
            display_name=f"pid {os.getpid()}",
            created_at=timestamp(_EPOCH),
            updated_at=timestamp(_EPOCH),
        )

    async def GetUser(  # noqa: N802 - gRPC method names
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        return self._response


class ChainedPaymentService(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, users: user_pb2_grpc.UserServiceAsyncStub, timeout: float) -> None:
        self._users = users
        self._timeout = timeout
        self._response = payment_pb2.CreatePaymentResponse(
            payment_id=_NOBODY,
            status=payment_pb2.PAYMENT_STATUS_COMPLETED,
            amount=1250,
            currency="USD",
            created_at=timestamp(_EPOCH),
        )

    async def CreatePayment(  # noqa: N802 - gRPC method names
        self, request: payment_pb2.CreatePaymentRequest, context: Context
    ) -> payment_pb2.CreatePaymentResponse:
        await clients.call(
            self._users.GetUser,
            user_pb2.GetUserRequest(user_id=request.user_id),
            dependency="usersvc",
            deadline=self._timeout,
        )
        return self._response


def _token_settings() -> Any:
    # Imported only when asked for: the auth module is optional for these ceilings.
    from libs.platform.auth.settings import TokenSettings
    from libs.platform.config import load_settings

    return load_settings(TokenSettings)


def _auth_interceptors(settings: Settings, service_name: str) -> list[Any]:
    if not settings.verify_tokens:
        return []
    from auth.v1 import auth_pb2_grpc
    from libs.platform.auth.verification import AuthInterceptor

    tokens = _token_settings()
    channel = grpc.aio.insecure_channel(tokens.token_issuer_addr)
    verifier = tokens.verifier(service_name, auth_pb2_grpc.AuthServiceStub(channel))
    return [AuthInterceptor(verifier)]


async def start(settings: Settings) -> GrpcServer:
    retries = RetryStats()
    if settings.chain_to:
        # As paymentsvc: a service token (SERVICE_KEY_FILE) when auth is on, and the same
        # client interceptors (tracing, shed-call retries, authentication).
        outgoing = (
            _token_settings().outgoing("paymentsvc", "usersvc") if settings.verify_tokens else []
        )
        channel = clients.open_channel(
            settings.chain_to,
            interceptors=[RetryInterceptor(settings.retry_policy(), retries), *outgoing],
        )
        service = ServiceRegistration(
            PAYMENT_SERVICE,
            payment_pb2_grpc.add_PaymentServiceServicer_to_server,
            # One method served; the rest answer UNIMPLEMENTED, as the base class's do.
            ChainedPaymentService(  # type: ignore[abstract]
                user_pb2_grpc.UserServiceStub(channel), settings.chain_timeout_seconds
            ),
        )
        name = "paymentsvc"
    else:
        service = ServiceRegistration(
            USER_SERVICE,
            user_pb2_grpc.add_UserServiceServicer_to_server,
            EmptyUserService(),  # type: ignore[abstract]  # GetUser only, as above
        )
        name = "usersvc"
    server = await start_server(
        [service],
        host=settings.grpc_host,
        port=settings.grpc_port,
        interceptors=_auth_interceptors(settings, name),
        overload=settings.limit_policy(),
        queue=settings.queue_policy(),
        shed_retry_after=settings.overload_retry_after_seconds,
        core=settings.core_limits(),
    )
    server.metrics.registry.register(RetryCollector(retries))
    return server


def main() -> int:
    return run_main("empty_server", Settings, start)


if __name__ == "__main__":
    sys.exit(main())
