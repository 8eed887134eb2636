from __future__ import annotations

import logging
import time

import pytest

from libs.platform.db import DatabaseUnavailable, acquire, create_pool
from libs.platform.testing.net import free_port


async def test_retry_gives_up_cleanly(caplog) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nope"
    start = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(DatabaseUnavailable) as info:
        await create_pool(dsn, attempts=3, base_delay=0.01, max_delay=0.05, connect_timeout=1)
    assert time.monotonic() - start < 5
    assert "after 3 attempts" in str(info.value)
    retries = [
        r for r in caplog.records if r.getMessage() == "database connection failed, retrying"
    ]
    assert [r.attempt for r in retries] == [1, 2]
    assert any(r.getMessage().endswith("giving up") for r in caplog.records)


async def test_connects(database_url: str) -> None:
    pool = await create_pool(database_url, attempts=2)
    try:
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def _app_name(pool) -> str:
    async with pool.acquire() as conn:
        return await conn.fetchval("SHOW application_name")


async def test_release_skips_the_reset_query_only_after_a_clean_use(database_url: str) -> None:
    # One connection, so every acquire below gets the same session.
    pool = await create_pool(database_url, attempts=2, min_size=1, max_size=1)
    try:
        async with acquire(pool, 5) as conn:
            await conn.execute("SET application_name = 'kept'")
        # A clean use is not followed by RESET ALL (stores must leave no session state)...
        async with acquire(pool, 5) as conn:
            assert await conn.fetchval("SHOW application_name") == "kept"
        # ...but a use that ends in an exception is, as is any acquire outside db.acquire.
        with pytest.raises(ZeroDivisionError):
            async with acquire(pool, 5) as conn:
                await conn.execute("SET application_name = 'failed'")
                1 / 0  # noqa: B018 - the error under test
        assert await _app_name(pool) == ""
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'direct'")
        assert await _app_name(pool) == ""
    finally:
        await pool.close()
