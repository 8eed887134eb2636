"""Natural batching: concurrent one-item requests share one batch call to a dependency.

The items are keys to look up (a user id) or records to write (a payment). An item asked
for while no batch is in flight goes out alone, at once: light load waits on no timer.
Items asked for while batches are in flight queue, and the next batch takes all of them
(up to `max_batch` distinct items). Under load one downstream call then serves many
requests, which is where the savings are: each call costs a full round of gRPC or database
work on both sides, while a batch of 50 costs hardly more than one.

One batch in flight at a time is the default: a second one in flight halves the batches
for nothing, since both wait on the same dependency. Measured on the bench (A/B in
tools/bench/results/ab-coalescer-in-flight.md), one instead of two cut usersvc's CPU per
GetUser by a quarter and raised CreatePayment's calls/s at concurrency 32 by half. The
cost: while a batch runs long (a statement waiting on a lock), nothing behind it goes
out; each caller still gives up at its own time limit.

Unlike a cache, every answer comes from a call that started after the key was asked for,
so it is never older than the question.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# fetch(distinct keys, time limit in seconds) -> a value for every key.
Fetch = Callable[[list[K], float], Awaitable[Mapping[K, V]]]


class Coalescer(Generic[K, V]):
    def __init__(self, fetch: Fetch[K, V], *, max_batch: int = 100, max_in_flight: int = 1):
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._fetch = fetch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[K, float, asyncio.Future[V]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: K, time_limit: float) -> V:
        """The value for key, waiting at most time_limit seconds (then TimeoutError)."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queue.append((key, time_limit, future))
        self._dispatch()
        # On timeout wait_for cancels the future; the batch then skips it.
        return await asyncio.wait_for(future, time_limit)

    def _dispatch(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch: dict[K, list[tuple[float, asyncio.Future[V]]]] = {}
            while self._queue:
                key, timeout, future = self._queue[0]
                if key not in batch and len(batch) == self._max_batch:
                    break
                self._queue.popleft()
                if not future.done():
                    batch.setdefault(key, []).append((timeout, future))
            if not batch:
                return
            self._in_flight += 1
            # A fresh context: the batch serves many requests, so it must not carry the
            # request id or deadline of whichever request happened to start it.
            task = asyncio.get_running_loop().create_task(
                self._run(batch), context=contextvars.Context()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[K, list[tuple[float, asyncio.Future[V]]]]) -> None:
        waiters = [w for ws in batch.values() for w in ws]
        try:
            # The batch may take as long as its most patient waiter; the others give up on
            # their own timeouts in get().
            values = await self._fetch(list(batch), max(t for t, _ in waiters))
        except asyncio.CancelledError:
            for _, future in waiters:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter gets the dependency's error
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._in_flight -= 1
            self._dispatch()
        for key, ws in batch.items():
            for _, future in ws:
                if future.done():
                    continue
                if key in values:
                    future.set_result(values[key])
                else:
                    future.set_exception(LookupError(f"batch fetch returned no value for {key!r}"))
