"""The C++ open-loop driver (clients/cpp/openloop) through native_openloop.py, against real
gRPC servers: its schedule, deadlines counted from the schedule, and outcomes by call."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from libs.platform.overload.core import QUEUE, REFUSE, CoreLimits
from libs.platform.testing.net import free_port
from libs.platform.testing.programs import cpp_program
from payment.v1 import payment_pb2, payment_pb2_grpc
from tools.bench.native_openloop import NativeOpenLoopDriver
from tools.bench.serving import serving

DRIVER = cpp_program("MICRO_OPENLOOP")


def test_sends_every_call_on_its_schedule_and_times_it() -> None:
    # Shedding off: on a busy machine the server could otherwise refuse a few.
    with serving(1, {"OVERLOAD_SHEDDING": "false"}) as served:
        point = NativeOpenLoopDriver(DRIVER).run(
            "GetUser", served.addr, 200, duration_s=1.0, warmup_s=0.3, user_id="u"
        )
    assert point.sent == 200  # exactly the schedule: 200/s for 1 s, warm-up not counted
    assert (point.ok, point.shed, point.errors) == (200, 0, {})
    assert 0 < point.ok_p50_ms <= point.ok_p99_ms < 1000
    assert point.lag_p99_ms < 50  # it started them on time
    # The point of a C++ driver: 200 calls/s take a small share of one core.
    assert point.client_cpu < 0.5


class _Payments(payment_pb2_grpc.PaymentServiceServicer):
    """Even-numbered idempotency keys are paid after `delay_s`; odd ones are refused."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def CreatePayment(
        self, request: payment_pb2.CreatePaymentRequest, context: grpc.ServicerContext
    ) -> payment_pb2.CreatePaymentResponse:
        with self._lock:
            self.calls += 1
        if int(request.idempotency_key.rsplit("-", 1)[1]) % 2:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        time.sleep(self.delay_s)
        return payment_pb2.CreatePaymentResponse(payment_id="p")


@contextlib.contextmanager
def _payments(delay_s: float, streams: int, excess: str = QUEUE) -> Iterator[tuple[str, _Payments]]:
    servicer = _Payments(delay_s)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        # The stream bound as the services set it (GRPC_EXCESS_STREAMS).
        options=CoreLimits(max_concurrent_streams=streams, excess_streams=excess).server_options(),
    )
    payment_pb2_grpc.add_PaymentServiceServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def test_keeps_each_payment_key_by_outcome() -> None:
    with _payments(delay_s=0.0, streams=100) as (addr, _):
        point = NativeOpenLoopDriver(DRIVER, channels=2).run(
            "CreatePayment", addr, 100, duration_s=0.5, warmup_s=0.2, user_id="u"
        )
    # Keys of every call, warm-up included (70), split by outcome; times only of the 50
    # measured ones.
    numbers = {k: int(k.rsplit("-", 1)[1]) for k in point.acked + point.shed_keys}
    assert sorted(numbers.values()) == list(range(70))
    assert all(numbers[k] % 2 == 0 for k in point.acked)
    assert all(numbers[k] % 2 == 1 for k in point.shed_keys)
    assert point.unknown_keys == []
    assert (point.sent, point.ok + point.shed) == (50, 50)
    assert point.ok == 25


def test_a_queued_call_spends_its_deadline_waiting_in_the_client() -> None:
    # One stream per connection and 0.2 s per call: the server can answer 5 calls a second
    # on the one connection, and is offered 40. The rest wait in the client and fail at
    # their deadline, counted from their scheduled time.
    with _payments(delay_s=0.2, streams=1) as (addr, _):
        point = NativeOpenLoopDriver(DRIVER, channels=1).run(
            "CreatePayment", addr, 40, duration_s=1.0, warmup_s=0.0, user_id="u", deadline_s=0.5
        )
    assert point.sent == 40
    assert not point.error_messages.keys() - {"DEADLINE_EXCEEDED"}, point.error_messages
    assert point.ok + point.shed + point.errors.get("DEADLINE_EXCEEDED", 0) == 40
    assert point.errors.get("DEADLINE_EXCEEDED", 0) >= 15
    # No refused streams (the bound as the services set it queues calls in the client), and
    # the answered ones came back within their deadline counted from the schedule.
    assert point.ok >= 1
    assert point.ok_p99_ms <= 500 + 50


def test_streams_beyond_a_refusing_bound_fail_at_once_without_running() -> None:
    # The same load with the excess refused by the transport (GRPC_EXCESS_STREAMS=refuse):
    # a call whose caller gave up still holds its stream in the server until its handler
    # ends, so the next stream on that connection is refused, long before its deadline.
    with _payments(delay_s=0.2, streams=1, excess=REFUSE) as (addr, servicer):
        point = NativeOpenLoopDriver(DRIVER, channels=1).run(
            "CreatePayment", addr, 40, duration_s=1.0, warmup_s=0.0, user_id="u", deadline_s=0.5
        )
    refused = point.errors.get("UNAVAILABLE", 0)
    assert refused >= 10, point.errors
    assert "RST_STREAM with error code 7" in point.error_messages["UNAVAILABLE"]
    # Refused calls never reached a handler: the server saw only the others.
    assert servicer.calls <= 40 - refused


def test_a_mistake_in_the_flags_names_the_flag() -> None:
    done = subprocess.run(  # noqa: S603 - the driver under test
        [DRIVER, "--target=127.0.0.1:1", "--user-id=u", "--rate=1", "--method=DeleteUser"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--method must be GetUser or CreatePayment, got 'DeleteUser'" in done.stderr


def test_an_unreachable_target_fails_naming_it() -> None:
    addr = f"127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match=f"could not connect to {addr}"):
        NativeOpenLoopDriver(DRIVER, connect_timeout_s=1).run(
            "GetUser", addr, 10, duration_s=0.2, warmup_s=0.0, user_id="u"
        )
