"""Login throttling that slows password guessing without handing attackers a lockout switch.

Three counts of failed logins, kept in auth_db so that every replica sees the same ones:

* per (account, caller address) pair: `free_failures` are free, then each further attempt
  must wait `backoff_base * 2^(failures - free_failures)` seconds (at most `backoff_max`)
  after the pair's last failure. Failures count for `pair_memory`. This is what slows one
  attacker down, and it is keyed on the pair so that an attacker elsewhere cannot slow the
  account's owner down at all.
* per account (all addresses): at most `max_failures_per_account` in `account_window`.
  This bounds a distributed guesser, whatever the number of addresses.
* per caller address (all accounts): at most `max_failures_per_address` in
  `address_window`. This bounds credential stuffing from one address.

The account and address ceilings do not apply to an address the account has logged in from
successfully within `known_address`: an owner is never locked out of their account by
someone else's failures, and the other users behind a shared address (a NAT, an office)
are not locked out by one of them guessing. Only the pair's own backoff applies there.

A login from a device the account logged in from before (a valid device token, devices.py)
is keyed on (account, device) instead of (account, address), and no ceiling applies to it:
OWASP's device cookies. Guesses by anyone else, behind the same address or not, never slow
that device down.

The account is the canonical email (libs/platform/emails.py), the same form usersvc looks
accounts up by, so two spellings can never be two accounts sharing one count. A successful
login clears only what it proves: the failures of that account from that address. It
never clears the account-wide count (the owner logging in must not reset an attacker's
progress towards the ceiling) nor the address count.

Every attempt is counted as a failure before the password is checked, under a lock per
count, and taken back when it was not a wrong password (usersvc could not answer, or the
login succeeded). So concurrent guesses count against each other: a burst gets no more
attempts through than the limits allow, however many calls race.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Policy:
    free_failures: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 900.0
    pair_memory_seconds: int = 86400
    max_failures_per_account: int = 100
    account_window_seconds: int = 86400
    max_failures_per_address: int = 50
    address_window_seconds: int = 900
    known_address_seconds: int = 30 * 86400

    def backoff(self, failures: int) -> float:
        """Seconds a pair must wait after its last failure, having failed `failures` times."""
        if failures < self.free_failures:
            return 0.0
        exponent = min(failures - self.free_failures, 62)  # 2**62 s is already "the max"
        return min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**exponent)

    @property
    def memory_seconds(self) -> int:
        """How long any failure matters; older ones are pruned."""
        return max(
            self.pair_memory_seconds, self.account_window_seconds, self.address_window_seconds
        )


@dataclass(frozen=True)
class Attempt:
    account: str  # canonical email
    address: str  # libs.platform.admission.client_address(peer)
    device: str | None = None  # a trusted device's id (devices.py)

    @property
    def pair_scope(self) -> str:
        # Unambiguous: addresses are IP text (no spaces), emails and device ids (URL-safe
        # base64) contain no whitespace.
        if self.device is not None:
            return f"device:{self.device} {self.account}"
        return f"pair:{self.address} {self.account}"

    @property
    def account_scope(self) -> str:
        return f"account:{self.account}"

    @property
    def address_scope(self) -> str:
        return f"ip:{self.address}"


@dataclass(frozen=True)
class Admission:
    # Seconds to wait before trying again; None: the attempt may go ahead.
    retry_after: float | None
    # The failures recorded for this attempt, to take back if it was not one.
    attempt_ids: tuple[int, ...]
    # What the password check's place in line depends on (usersvc's login_rank).
    known_address: bool = False
    address_attempts: int = 0  # the address's counted attempts in its window, before this


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


# The limit-th most recent failure in the window: once it leaves the window, fewer than the
# limit remain and attempts are allowed again. NULL while under the limit.
_CEILING_WAIT = """
SELECT extract(epoch FROM failed_at + $2::interval - clock_timestamp())
FROM login_failures
WHERE scope = $1 AND failed_at > clock_timestamp() - $2::interval
ORDER BY failed_at DESC OFFSET $3 LIMIT 1
"""

_PAIR_FAILURES = """
SELECT count(*) AS failures,
       extract(epoch FROM clock_timestamp() - max(failed_at)) AS since_last
FROM login_failures
WHERE scope = $1 AND failed_at > clock_timestamp() - $2::interval
"""

_COUNT = """
SELECT count(*) FROM login_failures
WHERE scope = $1 AND failed_at > clock_timestamp() - $2::interval
"""

_KNOWN = """
SELECT EXISTS (
    SELECT 1 FROM login_known_addresses
    WHERE account = $1 AND address = $2 AND last_success_at > clock_timestamp() - $3::interval
)
"""


class LoginThrottle:
    def __init__(self, pool: asyncpg.Pool, policy: Policy, acquire_timeout: float) -> None:
        self._pool = pool
        self.policy = policy
        self._timeout = acquire_timeout

    async def admit(self, attempt: Attempt) -> Admission:
        """Allow an attempt now and count it as a failure everywhere, or say how long to wait.

        One transaction with a lock per count (taken in one order): the check and the count
        of two racing attempts never interleave.
        """
        p = self.policy
        scopes = (attempt.pair_scope, attempt.account_scope, attempt.address_scope)
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            for scope in sorted(scopes):
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", scope)
            waits: list[float] = []
            pair = await conn.fetchrow(
                _PAIR_FAILURES, attempt.pair_scope, _seconds(p.pair_memory_seconds)
            )
            assert pair is not None  # an aggregate: always one row
            backoff = p.backoff(pair["failures"])
            if backoff > 0:
                waits.append(backoff - float(pair["since_last"]))
            known = await conn.fetchval(
                _KNOWN, attempt.account, attempt.address, _seconds(p.known_address_seconds)
            )
            address_attempts = await conn.fetchval(
                _COUNT, attempt.address_scope, _seconds(p.address_window_seconds)
            )
            if not known and attempt.device is None:
                for scope, limit, window in (
                    (attempt.account_scope, p.max_failures_per_account, p.account_window_seconds),
                    (attempt.address_scope, p.max_failures_per_address, p.address_window_seconds),
                ):
                    wait = await conn.fetchval(_CEILING_WAIT, scope, _seconds(window), limit - 1)
                    if wait is not None:
                        waits.append(float(wait))
            worst = max(waits, default=0.0)
            if worst > 0:
                return Admission(retry_after=worst, attempt_ids=(), known_address=known)
            ids = await conn.fetch(
                "INSERT INTO login_failures (scope) SELECT unnest($1::text[]) RETURNING id",
                list(scopes),
            )
            await conn.execute(
                "DELETE FROM login_failures WHERE failed_at < clock_timestamp() - $1::interval",
                _seconds(p.memory_seconds),
            )
        return Admission(
            retry_after=None,
            attempt_ids=tuple(r["id"] for r in ids),
            known_address=bool(known),
            address_attempts=int(address_attempts),
        )

    async def forgive(self, admission: Admission) -> None:
        """Take back an attempt that was not a wrong password (usersvc could not answer)."""
        async with self._pool.acquire(timeout=self._timeout) as conn:
            await conn.execute(
                "DELETE FROM login_failures WHERE id = ANY($1::bigint[])",
                list(admission.attempt_ids),
            )

    async def succeeded(self, admission: Admission, proven: Attempt) -> None:
        """A login succeeded: take the attempt back, clear the failures of the account that
        logged in from this address, and remember the address as one the owner uses."""
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM login_failures WHERE id = ANY($1::bigint[]) OR scope = $2",
                list(admission.attempt_ids),
                proven.pair_scope,
            )
            await conn.execute(
                "INSERT INTO login_known_addresses (account, address) VALUES ($1, $2) "
                "ON CONFLICT (account, address) DO UPDATE SET last_success_at = clock_timestamp()",
                proven.account,
                proven.address,
            )
            await conn.execute(
                "DELETE FROM login_known_addresses "
                "WHERE last_success_at < clock_timestamp() - $1::interval",
                _seconds(self.policy.known_address_seconds),
            )
