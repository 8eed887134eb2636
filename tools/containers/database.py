"""The role and database a service's DATABASE_URL names, made as the postgres StatefulSet does.

deploy/kustomize/base/postgres/initdb/10-service-databases.sh creates, per service, a login
role with no other privilege and the service's password, owning its database, and takes
CONNECT away from PUBLIC. `create` does the same on the caller's server for one
DATABASE_URL, keeping the URL's user, password and database name; `drop` undoes it.
REVOKE on the `postgres` and `template1` databases is left out: on a shared server
(MICRO_TEST_DATABASE_URL) that would lock out other users.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncpg

ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> Credentials:
        parts = urlsplit(url)
        if not parts.username or parts.password is None or not parts.path.strip("/"):
            raise ValueError("DATABASE_URL must name a user, a password and a database")
        return cls(unquote(parts.username), unquote(parts.password), parts.path.strip("/"))


async def _execute_formatted(conn: asyncpg.Connection, template: str, *args: str) -> None:
    """Runs format(template, args...): the server quotes identifiers (%I) and literals (%L),
    since DDL takes no bind parameters."""
    params = ", ".join(f"${i}::text" for i in range(1, len(args) + 2))
    statement = await conn.fetchval(f"SELECT format({params})", template, *args)
    await conn.execute(statement)


async def create(admin_dsn: str, url: str) -> Credentials:
    """The login role and owned database of `url` on the server at `admin_dsn`."""
    creds = Credentials.from_url(url)
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", creds.user)
        verb = "ALTER" if exists else "CREATE"
        await _execute_formatted(
            conn, f"{verb} ROLE %I {ROLE_OPTIONS} PASSWORD %L", creds.user, creds.password
        )
        await _execute_formatted(conn, "CREATE DATABASE %I OWNER %I", creds.database, creds.user)
        await _execute_formatted(
            conn, "REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC", creds.database
        )
    finally:
        await conn.close()
    return creds


async def drop(admin_dsn: str, creds: Credentials) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await _execute_formatted(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", creds.database)
        await _execute_formatted(conn, "DROP ROLE IF EXISTS %I", creds.user)
    finally:
        await conn.close()
