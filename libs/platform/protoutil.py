from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts
