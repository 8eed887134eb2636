from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from libs.platform.migrations import MigrationError, apply_migrations


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


@pytest.fixture
def migdir(tmp_path: Path) -> Path:
    write(tmp_path, "0001_init.sql", "CREATE TABLE t (id int PRIMARY KEY);")
    write(tmp_path, "0002_more.sql", "INSERT INTO t VALUES (1); ALTER TABLE t ADD c text;")
    return tmp_path


async def test_applies_in_order_once(database_url: str, migdir: Path) -> None:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
        assert await apply_migrations(pool, migdir) == [1, 2]
        assert await apply_migrations(pool, migdir) == []
        assert await pool.fetchval("SELECT count(*) FROM t") == 1
        rows = await pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [(1, "init"), (2, "more")]
        write(migdir, "0003_next.sql", "INSERT INTO t VALUES (2);")
        assert await apply_migrations(pool, migdir) == [3]


async def test_concurrent_runs_apply_each_once(database_url: str, migdir: Path) -> None:
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=1) for _ in range(5)]
    try:
        results = await asyncio.gather(*(apply_migrations(p, migdir) for p in pools))
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    assert sorted(results, key=len) == [[], [], [], [], [1, 2]]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await conn.close()


async def test_changed_applied_file_is_an_error(database_url: str, migdir: Path) -> None:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        await apply_migrations(pool, migdir)
        write(migdir, "0001_init.sql", "CREATE TABLE t (id bigint PRIMARY KEY);")
        with pytest.raises(MigrationError, match="0001_init.sql was changed"):
            await apply_migrations(pool, migdir)


async def test_failed_migration_rolls_back(database_url: str, migdir: Path) -> None:
    write(migdir, "0003_bad.sql", "INSERT INTO t VALUES (5); SELECT no_such_function();")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(pool, migdir)
        assert await pool.fetchval("SELECT count(*) FROM t WHERE id = 5") == 0
        assert await pool.fetchval("SELECT max(version) FROM schema_migrations") == 2


async def test_bad_file_name(database_url: str, migdir: Path) -> None:
    write(migdir, "3_oops.sql", "SELECT 1;")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        with pytest.raises(MigrationError, match="NNNN_name.sql"):
            await apply_migrations(pool, migdir)


async def test_python_migration_runs_in_order_in_its_transaction(
    database_url: str, migdir: Path
) -> None:
    write(
        migdir,
        "0003_backfill.py",
        "async def migrate(conn):\n"
        "    rows = await conn.fetch('SELECT id FROM t')\n"
        "    await conn.executemany(\n"
        "        'UPDATE t SET c = $2 WHERE id = $1', [(r['id'], f'row {r[\"id\"]}') for r in rows]\n"
        "    )\n",
    )
    write(migdir, "0004_after.sql", "ALTER TABLE t ALTER COLUMN c SET NOT NULL;")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        assert await apply_migrations(pool, migdir) == [1, 2, 3, 4]
        assert await pool.fetchval("SELECT c FROM t") == "row 1"
        names = await pool.fetch("SELECT name FROM schema_migrations ORDER BY version")
        assert [r["name"] for r in names] == ["init", "more", "backfill", "after"]
        # Its text is checksummed like SQL.
        write(migdir, "0003_backfill.py", "async def migrate(conn):\n    pass\n")
        with pytest.raises(MigrationError, match="0003_backfill.py was changed"):
            await apply_migrations(pool, migdir)


async def test_failing_python_migration_rolls_back(database_url: str, migdir: Path) -> None:
    write(
        migdir,
        "0003_bad.py",
        "async def migrate(conn):\n"
        "    await conn.execute('INSERT INTO t VALUES (7)')\n"
        "    raise RuntimeError('boom')\n",
    )
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        with pytest.raises(RuntimeError, match="boom"):
            await apply_migrations(pool, migdir)
        assert await pool.fetchval("SELECT count(*) FROM t WHERE id = 7") == 0
        assert await pool.fetchval("SELECT max(version) FROM schema_migrations") == 2


async def test_python_migration_without_migrate(database_url: str, migdir: Path) -> None:
    write(migdir, "0003_empty.py", "X = 1\n")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        with pytest.raises(MigrationError, match="defines no `async def migrate"):
            await apply_migrations(pool, migdir)
