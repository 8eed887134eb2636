"""Watching a batched store method (see libs/platform/batching.py) from a test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def record_batches(
    monkeypatch: pytest.MonkeyPatch, cls: type, method: str, hold_s: float = 0.02
) -> list[list[Any]]:
    """Wrap `cls.method(self, items, time_limit)` to record the items of every call.

    Each call is also held in flight for hold_s, so requests sent together queue behind the
    first one and form batches, whatever the machine's speed. Patch before the service
    starts if it binds the method at start-up.
    """
    calls: list[list[Any]] = []
    real = getattr(cls, method)

    async def recorded(self: Any, items: list[Any], time_limit: float) -> Any:
        calls.append(list(items))
        await asyncio.sleep(hold_s)
        return await real(self, items, time_limit)

    monkeypatch.setattr(cls, method, recorded)
    return calls
