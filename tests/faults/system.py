"""Production's wiring for the fault tests (libs/platform/testing/topology.py).

A fault test runs some services for real, in-process or as child processes, and may stand
in for others on their ports (a slow usersvc; an authsvc that only serves the token keys).
Every service is wired as in production: it trusts exactly its callers, and the test calls
as a user does, with a user token, never as a trusted service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from libs import inventory
from libs.platform.testing.security import FakeJwksServer, bearer
from libs.platform.testing.topology import Wired

S = TypeVar("S")

CHEAP_ARGON2: dict[str, object] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}
# The same, as a child process reads them.
USER_ENV_CHEAP_ARGON2 = {name.upper(): str(value) for name, value in CHEAP_ARGON2.items()}


@dataclass
class FaultSystem:
    wired: Wired
    # On the token issuer's port while the test does not run the real one; `user_token`
    # mints with it.
    issuer: FakeJwksServer | None = None

    @classmethod
    def wire(cls, keys: Path) -> FaultSystem:
        return cls(Wired.on_loopback(inventory.load(), keys, inventory.load().names()))

    def port(self, name: str) -> int:
        return self.wired.ports[name]

    def settings(self, cls: type[S], name: str, **values: object) -> S:
        return self.wired.settings(cls, name, values)

    def process_env(self, name: str, **values: str) -> dict[str, str]:
        return {**self.wired.process_env(name), **values}

    async def stand_in_for_issuer(self) -> FakeJwksServer:
        """A stand-in serving the token keys on the issuer's port, for tests that do not
        exercise Login: the services verify its user tokens as they would authsvc's."""
        self.issuer = FakeJwksServer()
        self.issuer.rotate()
        return await self.issuer.start(port=self.port(inventory.token_issuer().name))

    def user_metadata(self, user_id: str) -> tuple[tuple[str, str], ...]:
        assert self.issuer is not None, "stand_in_for_issuer() first"
        return bearer(self.issuer.mint(user_id))
