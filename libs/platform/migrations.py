"""Versioned SQL migrations: files NNNN_name.sql, applied once, in order, each in a transaction.

The whole run holds a PostgreSQL advisory lock so replicas starting together apply each
migration exactly once. An applied file whose contents changed is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any fixed 64-bit number works; derived from a string so its purpose is greppable.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"schema_migrations").digest()[:8], "big", signed=True)


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str


def load_migrations(directory: Path) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _NAME_RE.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"duplicate migration version {version} ({path.name})")
        sql = path.read_text(encoding="utf-8")
        found[version] = Migration(
            version, m.group(2), sql, hashlib.sha256(sql.encode()).hexdigest()
        )
    return [found[v] for v in sorted(found)]


async def apply_migrations(pool: asyncpg.Pool, directory: Path) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    migrations = load_migrations(directory)
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {r["version"]: r for r in rows}
            for mig in migrations:
                done = applied.get(mig.version)
                if done is not None:
                    if done["checksum"] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name}.sql was changed after it "
                            "was applied; add a new migration instead of editing it"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        mig.checksum,
                    )
                log.info("applied migration", extra={"version": mig.version, "migration": mig.name})
                applied_now.append(mig.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
