"""Bounds that gRPC's core and HTTP/2 enforce before any Python runs for a call.

A refusal in Python costs a CPU-bound process about what serving a cheap call does
(README.md here), so the cheapest way to say no is not to take the call at all:

- `max_concurrent_rpcs`: beyond this many calls in flight in the process, grpc.aio's
  Cython server answers RESOURCE_EXHAUSTED ("Concurrent RPC limit exceeded!", no
  RetryInfo) before any interceptor, decoder or handler of ours runs.
- `max_concurrent_streams`: HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS per connection. What
  happens to streams beyond it is `excess_streams`:
  - `refuse` (gRPC's own default, its "grpc.http.overload_protection"): the server counts a
    stream until the application has let go of its call and answers every stream beyond
    the bound with RST_STREAM REFUSED_STREAM from the transport, before a call object, a
    header decode or any Python exists. The client sees `UNAVAILABLE: Received RST_STREAM
    with error code 7` at once: the call never ran, so retrying it is safe. A bound here is
    a bound on the queue in front of the handlers, per connection.
  - `queue`: the server counts streams the HTTP/2 way, as its clients do, so clients hold
    calls beyond the bound in their own queues and fail them at their deadlines. The server
    does nothing for them, but a client's queue is first-in first-out: under a sustained
    excess every call waits there nearly its whole deadline (BENCHMARKS.md).
  With `refuse` a client that opens more streams than the bound before it has read the
  server's SETTINGS (a burst on a new connection) gets the excess refused: keep the bound
  above what one connection bursts at start (RFC 9113 6.5.2 recommends at least 100).

Both are off (None) unless set: GRPC_MAX_CONCURRENT_RPCS, GRPC_MAX_CONCURRENT_STREAMS.
"""

from __future__ import annotations

from dataclasses import dataclass

REFUSE = "refuse"
QUEUE = "queue"
EXCESS_STREAMS = (REFUSE, QUEUE)


@dataclass(frozen=True)
class CoreLimits:
    max_concurrent_rpcs: int | None = None
    max_concurrent_streams: int | None = None
    excess_streams: str = REFUSE

    def __post_init__(self) -> None:
        if self.excess_streams not in EXCESS_STREAMS:
            raise ValueError(f"excess_streams must be one of {EXCESS_STREAMS}")

    def server_options(self) -> list[tuple[str, int]]:
        """The channel arguments of grpc.aio.server for these limits."""
        if self.max_concurrent_streams is None:
            return []
        return [
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.http.overload_protection", int(self.excess_streams == REFUSE)),
        ]


NO_CORE_LIMITS = CoreLimits()
