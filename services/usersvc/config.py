from __future__ import annotations

from dataclasses import dataclass

from libs import inventory
from libs.platform import config as c
from libs.platform.auth.settings import TokenSettings
from libs.platform.settings import ServiceSettings


# What every service reads (DATABASE_URL, GRPC_*, LOG_LEVEL, DB_*, TLS, OVERLOAD_*, RETRY_*) comes from
# ServiceSettings; token verification (AUTHSVC_ADDR, TRUSTED_SERVICE_KEYS, ...) and
# SERVICE_KEY_FILE (for RevokeUserSessions calls to authsvc) from TokenSettings.
@dataclass(frozen=True)
class Settings(ServiceSettings, TokenSettings):
    grpc_port: int = c.grpc_port(inventory.service("usersvc").port)
    # Unset means argon2-cffi's defaults (the production setting); tests lower them.
    argon2_time_cost: int | None = c.setting(None, min=1)
    argon2_memory_kib: int | None = c.setting(None, min=8)
    argon2_parallelism: int | None = c.setting(None, min=1)
    # Password hashing lanes (passwords.py). Sign-ups and password changes get one thread:
    # anyone can send them, so they must never hold more CPU than that. Logins get their
    # own threads and a queue short enough that a queued check still finishes within
    # authsvc's USERSVC_TIMEOUT_SECONDS (2 s; one default argon2id check takes ~50 ms).
    hash_signup_workers: int = c.setting(1, min=1, max=64)
    hash_signup_queue: int = c.setting(4, min=0, max=1000)
    hash_login_workers: int = c.setting(2, min=1, max=64)
    hash_login_queue: int = c.setting(32, min=0, max=1000)
    # Sign-ups per caller address (a /64 for IPv6): SIGNUP_BURST at once, then
    # SIGNUP_PER_MINUTE. In process memory, so per replica and per worker process. Generous
    # on purpose: a taken address costs no hash anyway and a full hashing lane refuses at
    # once, so this only bounds how fast one address can create accounts (an office NAT or
    # a test suite signs many up in a row).
    signup_burst: int = c.setting(30, min=1, max=100000)
    signup_per_minute: float = c.setting(10.0, min=0.01, max=100000.0)
    # Password change attempts per user (each checks the current password: with a stolen
    # access token it would otherwise be a password-guessing oracle): this many at once,
    # then one per 3 minutes.
    password_change_burst: int = c.setting(5, min=1, max=1000)
    password_change_per_minute: float = c.setting(1 / 3, min=0.001, max=1000.0)
    # Email changes per account, counted once the password is proven: each can answer
    # ALREADY_EXISTS, so one account must not probe the address book from many addresses.
    email_change_burst: int = c.setting(5, min=1, max=1000)
    email_changes_per_hour: float = c.setting(2.0, min=0.001, max=100000.0)
    # Ending sessions in authsvc after a password change or deletion (sessions.py).
    authsvc_timeout_seconds: float = c.setting(2.0, min=0.05, max=60.0)
    session_revocation_retry_seconds: float = c.setting(5.0, min=0.05, max=3600.0)
