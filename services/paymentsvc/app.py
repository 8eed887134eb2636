"""Wiring: pool, migrations, usersvc channel, servicer and gRPC server."""

from __future__ import annotations

from pathlib import Path

from auth.v1 import auth_pb2_grpc
from libs.platform.admission import RateLimiter
from libs.platform.app import ServiceApp, Wiring
from libs.platform.auth.verification import AuthInterceptor
from libs.platform.server import ServiceRegistration
from payment.v1 import payment_pb2, payment_pb2_grpc
from services.paymentsvc.config import Settings
from services.paymentsvc.service import PaymentService
from services.paymentsvc.store import PaymentStore
from user.v1 import user_pb2_grpc

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


# paymentsvc keeps nothing beyond the common parts; the name stays for callers.
PaymentApp = ServiceApp


async def start(settings: Settings) -> PaymentApp:
    # paymentsvc checks that the user exists as itself (a service), not as the caller.
    outgoing = settings.outgoing("paymentsvc", "usersvc")
    async with Wiring(settings, MIGRATIONS) as wiring:
        users_channel = wiring.channel(settings.usersvc_addr, outgoing)
        authsvc_channel = wiring.channel(settings.token_issuer_addr)
        verifier = settings.verifier("paymentsvc", auth_pb2_grpc.AuthServiceStub(authsvc_channel))
        servicer = PaymentService(
            PaymentStore(wiring.pool, settings.db_acquire_timeout_seconds),
            user_pb2_grpc.UserServiceStub(users_channel),
            default_currency=settings.default_currency,
            users_timeout=settings.usersvc_timeout_seconds,
            max_major_units=settings.payment_max_major_units,
            payments_per_user=(
                RateLimiter(settings.payment_burst, settings.payments_per_second)
                if settings.payments_per_second > 0
                else None
            ),
        )
        server = await wiring.serve(
            ServiceRegistration(
                SERVICE_NAME, payment_pb2_grpc.add_PaymentServiceServicer_to_server, servicer
            ),
            interceptors=[
                AuthInterceptor(
                    verifier,
                    max_in_flight_per_user=settings.user_max_in_flight or None,
                    failure_limit=settings.token_failure_limit(),
                )
            ],
        )
        return PaymentApp(server, wiring.pool, wiring.hand_over())
