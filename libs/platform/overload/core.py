"""Bounds that gRPC's core and HTTP/2 enforce before any Python runs for a call.

A refusal in Python costs a CPU-bound process about what serving a cheap call does
(README.md here), so the cheapest way to say no is not to take the call at all:

- `max_concurrent_rpcs`: beyond this many calls in flight in the process, grpc.aio's
  Cython server answers RESOURCE_EXHAUSTED ("Concurrent RPC limit exceeded!", no
  RetryInfo) before any interceptor, decoder or handler of ours runs.
- `max_concurrent_streams`: HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS per connection; a
  client queues its own calls beyond it, so the server does no work for them at all.
  gRPC's core ("grpc.http.overload_protection", on by default) counts a stream against
  that bound until the application has let go of its call, not until HTTP/2 closes it, and
  refuses streams beyond it with RST_STREAM REFUSED_STREAM, which clients report as
  `UNAVAILABLE: Received RST_STREAM with error code 7` and do not retry. The client counts
  the HTTP/2 way, so it sends streams the server then refuses: with a bound of 1, 23 of 40
  calls failed so (tools/bench/native_openloop_test.py). The bound here turns that off, so
  that the server counts as its clients do and excess calls wait in the clients' queues.

Both are off (None) unless set: GRPC_MAX_CONCURRENT_RPCS, GRPC_MAX_CONCURRENT_STREAMS.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreLimits:
    max_concurrent_rpcs: int | None = None
    max_concurrent_streams: int | None = None

    def server_options(self) -> list[tuple[str, int]]:
        """The channel arguments of grpc.aio.server for these limits."""
        if self.max_concurrent_streams is None:
            return []
        return [
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.http.overload_protection", 0),
        ]


NO_CORE_LIMITS = CoreLimits()
