"""Versioned migrations: files NNNN_name.sql or NNNN_name.py, applied once, in order, each
in a transaction.

A `.py` migration defines `async def migrate(conn: asyncpg.Connection) -> None`; it is for
the rare change SQL cannot express (backfilling a column computed by the code's own rules,
such as the canonical email form in libs/platform/emails.py), and runs in the same
transaction, lock and bookkeeping as an SQL one.

The whole run holds a PostgreSQL advisory lock so replicas starting together apply each
migration exactly once. An applied file whose contents changed is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|py)$")
_SUFFIXES = (".sql", ".py")

# A pooled connection is a proxy of a Connection, with the same methods.
Step = Callable[["asyncpg.Connection[Any] | PoolConnectionProxy[Any]"], Awaitable[None]]
# Any fixed 64-bit number works; derived from a string so its purpose is greppable.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"schema_migrations").digest()[:8], "big", signed=True)


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # the file's text (for a .py migration, its source)
    checksum: str
    step: Step | None = None  # a .py migration's migrate(); None: run `sql`

    @property
    def file_name(self) -> str:
        return f"{self.version:04d}_{self.name}.{'py' if self.step else 'sql'}"


def _python_step(path: Path, source: str) -> Step:
    # Compiled from the text already read (and checksummed), in a module of its own: no
    # import machinery, no bytecode written next to the file.
    module = types.ModuleType(f"migration_{path.stem}")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - our own file
    step = getattr(module, "migrate", None)
    if step is None or not callable(step):
        raise MigrationError(f"migration {path.name} defines no `async def migrate(conn)`")
    return cast(Step, step)


def load_migrations(directory: Path) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in _SUFFIXES or path.name == "__init__.py":
            continue
        m = _NAME_RE.match(path.name)
        if not m:
            raise MigrationError(
                f"migration file {path.name!r} is not named NNNN_name.sql (or NNNN_name.py)"
            )
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"duplicate migration version {version} ({path.name})")
        text = path.read_text(encoding="utf-8")
        step = _python_step(path, text) if m.group(3) == "py" else None
        found[version] = Migration(
            version, m.group(2), text, hashlib.sha256(text.encode()).hexdigest(), step
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
                            f"migration {mig.file_name} was changed after it "
                            "was applied; add a new migration instead of editing it"
                        )
                    continue
                async with conn.transaction():
                    if mig.step is not None:
                        await mig.step(conn)
                    else:
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
