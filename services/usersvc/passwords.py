"""argon2id hashing on bounded thread lanes, so it never blocks the event loop and one kind
of caller can never take the CPU another needs.

Two lanes (libs/platform/admission.WorkPool), each with its own threads and a short queue:

* `accounts`: sign-up and password changes (hashing a new password, checking the current
  one). Reachable anonymously through CreateUser, so it is the lane a flood fills.
* `logins`: VerifyCredentials for authsvc's Login. Nothing else runs on it, so a sign-up
  flood cannot delay a login by a single hash. Its waiting checks go by `login_rank`, so a
  login flood cannot delay the owner's (README.md, "Logins under a flood").

Beyond a lane's queue, calls are refused at once (admission.Overloaded) instead of waiting
behind work that would outlive their deadline.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from libs.platform.admission import WorkPool

# Ranks on the logins lane (lower first): what authsvc could tell of the caller.
TRUSTED_DEVICE_RANK = 0
KNOWN_ADDRESS_RANK = 1
NEW_CALLER_RANK = 2  # plus the caller's recent attempts, capped


def login_rank(*, trusted_device: bool, known_address: bool, recent_attempts: int) -> int:
    """A device the account logged in from, then an address it did, then everyone else by
    how many attempts their address made lately: a new caller's first attempt goes before
    a guesser's hundredth."""
    if trusted_device:
        return TRUSTED_DEVICE_RANK
    if known_address:
        return KNOWN_ADDRESS_RANK
    return NEW_CALLER_RANK + min(recent_attempts, 1_000_000)


@dataclass(frozen=True)
class Lanes:
    accounts_workers: int = 1
    accounts_queue: int = 4
    logins_workers: int = 2
    logins_queue: int = 32


class Passwords:
    def __init__(
        self,
        time_cost: int | None = None,
        memory_kib: int | None = None,
        parallelism: int | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        # argon2-cffi's defaults (RFC 9106's low-memory profile) for what is not given.
        default = PasswordHasher()
        self._hasher = PasswordHasher(  # argon2id is the default type
            time_cost=default.time_cost if time_cost is None else time_cost,
            memory_cost=default.memory_cost if memory_kib is None else memory_kib,
            parallelism=default.parallelism if parallelism is None else parallelism,
        )
        # Verified against for unknown emails so both failure paths cost the same.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        lanes = lanes or Lanes()
        self.accounts = WorkPool(
            "sign-ups and password changes", lanes.accounts_workers, lanes.accounts_queue
        )
        self.logins = WorkPool("logins", lanes.logins_workers, lanes.logins_queue)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        """A new password's hash (sign-up, password change): the accounts lane."""
        return await self.accounts.run(self._hasher.hash, password)

    async def check_current(self, hashed: str, password: str) -> bool:
        """The current password before a change: the accounts lane, like the change itself."""
        return await self.accounts.run(self._verify, hashed, password)

    async def verify(self, hashed: str | None, password: str, *, rank: int = 0) -> bool:
        """A login's password: the logins lane, in `rank` order (login_rank). Unknown emails
        cost the same as known ones."""
        if hashed is None:
            await self.logins.run(self._verify, self._dummy_hash, password, rank=rank)
            return False
        return await self.logins.run(self._verify, hashed, password, rank=rank)

    def close(self) -> None:
        self.accounts.close()
        self.logins.close()
