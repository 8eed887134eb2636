"""Settings and credentials for running the real services in fault tests.

Every caller authenticates (see libs/platform/auth/): the test itself acts as the trusted
service "tester", and paymentsvc/authsvc carry their own service keys to usersvc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.platform.testing.security import ServiceKeys, bearer
from services.authsvc.config import Settings as AuthSettings
from services.paymentsvc.config import Settings as PaySettings
from services.usersvc.config import Settings as UserSettings

TESTER = "tester"


@dataclass
class Credentials:
    keys: ServiceKeys

    @classmethod
    def create(cls, directory: Path) -> Credentials:
        directory.mkdir(parents=True, exist_ok=True)
        keys = ServiceKeys(directory)
        for name in ("paymentsvc", "authsvc", TESTER):
            keys.add(name)
        return cls(keys)

    def metadata(self, audience: str) -> tuple[tuple[str, str], ...]:
        """What the test sends to `audience` (usersvc, paymentsvc, authsvc)."""
        return bearer(self.keys.token(TESTER, audience))

    def env(self, service: str, authsvc_port: int) -> dict[str, str]:
        """The same identity settings as environment variables, for a child process."""
        out = {
            "TRUSTED_SERVICE_KEYS": str(self.keys.trusted_dir),
            "AUTHSVC_ADDR": f"127.0.0.1:{authsvc_port}",
        }
        if service in self.keys.private:
            out["SERVICE_KEY_FILE"] = self.keys.key_file(service)
        return out


def user_settings(
    dsn: str, creds: Credentials, *, authsvc_port: int, port: int = 0
) -> UserSettings:
    return UserSettings(
        database_url=dsn,
        grpc_port=port,
        grpc_host="127.0.0.1",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        authsvc_addr=f"127.0.0.1:{authsvc_port}",
        trusted_service_keys=str(creds.keys.trusted_dir),
    )


def payment_settings(
    dsn: str, creds: Credentials, *, users_port: int, authsvc_port: int
) -> PaySettings:
    return PaySettings(
        database_url=dsn,
        grpc_port=0,
        grpc_host="127.0.0.1",
        usersvc_addr=f"127.0.0.1:{users_port}",
        usersvc_timeout_seconds=1.0,
        authsvc_addr=f"127.0.0.1:{authsvc_port}",
        trusted_service_keys=str(creds.keys.trusted_dir),
        service_key_file=creds.keys.key_file("paymentsvc"),
    )


def auth_settings(dsn: str, creds: Credentials, *, users_port: int, port: int = 0) -> AuthSettings:
    return AuthSettings(
        database_url=dsn,
        grpc_port=port,
        grpc_host="127.0.0.1",
        usersvc_addr=f"127.0.0.1:{users_port}",
        usersvc_timeout_seconds=1.0,
        service_key_file=creds.keys.key_file("authsvc"),
    )


USER_ENV_CHEAP_ARGON2 = {
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_PARALLELISM": "1",
}
