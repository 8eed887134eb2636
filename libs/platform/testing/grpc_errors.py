from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def field_violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations attached to an error, by field."""
    status = rpc_status.from_call(err)
    assert status is not None, "error carries no rich status"
    out: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def retry_delay(err: grpc.aio.AioRpcError) -> int:
    """Seconds of the google.rpc.RetryInfo attached to an error (it must carry one)."""
    status = rpc_status.from_call(err)
    assert status is not None, "error carries no rich status"
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.seconds
    raise AssertionError("no RetryInfo detail")
