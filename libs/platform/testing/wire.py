"""Hand-made protobuf wire bytes, for tests that send what no generated client would.

Generated stubs refuse to build a message with invalid UTF-8 in a string field, so an
attacker (and a test playing one) writes the bytes itself and sends them with a generic
call that does no serialization.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

_LENGTH_DELIMITED = 2
_VARINT = 0


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """A string, bytes or message field: tag, length, then `payload` exactly as given."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def varint(number: int, value: int) -> bytes:
    """An int32/int64/bool/enum field with a non-negative value."""
    return _varint(number << 3 | _VARINT) + _varint(value)


async def raw_unary(
    channel: grpc.aio.Channel,
    method: str,
    request: bytes,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> bytes:
    """Call `method` (e.g. "/payment.v1.PaymentService/GetPayment") with raw request bytes."""
    # No serializers: bytes in, bytes out.
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    return await call(request, metadata=metadata, timeout=10)
