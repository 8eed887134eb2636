"""Coalescer: what callers of a batched lookup rely on (answers, errors, timeouts)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from libs.platform.batching import Coalescer


class Dependency:
    """A batch lookup that records its calls and can be held open."""

    def __init__(self, known: dict[str, int]) -> None:
        self.known = known
        self.calls: list[tuple[list[str], float]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def fetch(self, keys: list[str], time_limit: float) -> dict[str, int]:
        self.calls.append((keys, time_limit))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {k: self.known[k] for k in keys if k in self.known}


async def held(dep: Dependency, co: Coalescer[str, int], keys: list[str], time_limit: float = 1.0):
    """Ask for keys while the first call is still in flight, then let everything finish."""
    dep.release.clear()
    tasks = [asyncio.create_task(co.get(k, time_limit)) for k in keys]
    await asyncio.sleep(0.01)
    dep.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_light_load_goes_out_at_once_alone() -> None:
    dep = Dependency({"a": 1})
    co = Coalescer(dep.fetch)
    assert await co.get("a", 1.0) == 1
    assert dep.calls == [(["a"], 1.0)]


async def test_by_default_one_batch_is_in_flight_and_the_rest_wait_for_it() -> None:
    dep = Dependency({k: i for i, k in enumerate("abc")})
    co = Coalescer(dep.fetch)
    assert await held(dep, co, list("abc")) == [0, 1, 2]
    assert [keys for keys, _ in dep.calls] == [["a"], ["b", "c"]]


async def test_keys_asked_during_a_call_share_the_next_one() -> None:
    dep = Dependency({k: i for i, k in enumerate("abcdef")})
    co = Coalescer(dep.fetch, max_in_flight=1)
    results = await held(dep, co, list("abcdefabc"))
    assert results == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    # "a" went alone; the rest queued behind it and went as one call, each key once.
    assert [keys for keys, _ in dep.calls] == [["a"], ["b", "c", "d", "e", "f", "a"]]


async def test_batches_are_capped_and_run_side_by_side() -> None:
    dep = Dependency({str(i): i for i in range(10)})
    co = Coalescer(dep.fetch, max_batch=3, max_in_flight=2)
    results = await held(dep, co, [str(i) for i in range(10)])
    assert results == list(range(10))
    # Two calls may be in flight: "0" and "1" went at once; then batches of at most 3.
    assert [keys for keys, _ in dep.calls] == [
        ["0"],
        ["1"],
        ["2", "3", "4"],
        ["5", "6", "7"],
        ["8", "9"],
    ]


async def test_a_failed_call_fails_its_waiters_and_the_next_call_still_runs() -> None:
    dep = Dependency({"a": 1, "b": 2})
    co = Coalescer(dep.fetch, max_in_flight=1)
    dep.fail = ConnectionError("down")
    results = await held(dep, co, ["a", "b"])
    assert all(isinstance(r, ConnectionError) for r in results)
    dep.fail = None
    assert await co.get("b", 1.0) == 2


async def test_a_missing_value_is_a_lookup_error_for_that_key_only() -> None:
    dep = Dependency({"a": 1})
    co = Coalescer(dep.fetch, max_in_flight=1)
    first, second, third = await held(dep, co, ["a", "a", "zz"])
    assert (first, second) == (1, 1)
    assert isinstance(third, LookupError) and "zz" in str(third)


async def test_each_waiter_keeps_its_own_timeout() -> None:
    dep = Dependency({"a": 1, "b": 2})
    co = Coalescer(dep.fetch, max_in_flight=1)
    dep.release.clear()
    first = asyncio.create_task(co.get("a", 1.0))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(co.get("b", 0.05))
    patient = asyncio.create_task(co.get("b", 1.0))
    with pytest.raises(TimeoutError):
        await impatient
    dep.release.set()
    assert (await first, await patient) == (1, 2)
    # The batch may take as long as its most patient waiter.
    assert dep.calls[1] == (["b"], 1.0)


async def test_the_call_does_not_run_in_the_askers_context() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    seen: list[str] = []

    async def fetch(keys: list[str], time_limit: float) -> dict[str, str]:
        seen.append(request_id.get())
        return {k: k for k in keys}

    request_id.set("first-caller")
    assert await Coalescer(fetch).get("x", 1.0) == "x"
    assert seen == [""]
