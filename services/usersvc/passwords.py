"""argon2id hashing, run in a worker thread so it never blocks the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(
        self,
        time_cost: int | None = None,
        memory_kib: int | None = None,
        parallelism: int | None = None,
    ) -> None:
        kwargs: dict[str, int] = {}
        if time_cost is not None:
            kwargs["time_cost"] = time_cost
        if memory_kib is not None:
            kwargs["memory_cost"] = memory_kib
        if parallelism is not None:
            kwargs["parallelism"] = parallelism
        self._hasher = PasswordHasher(**kwargs)  # argon2id is the default type
        # Verified against for unknown emails so both failure paths cost the same.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, hashed: str | None, password: str) -> bool:
        if hashed is None:
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self._verify, hashed, password)
