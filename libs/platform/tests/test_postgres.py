"""Which OS account the throwaway PostgreSQL cluster runs as (it refuses to run as root)."""

from __future__ import annotations

import asyncio
import os
import pwd
import tempfile
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from libs.platform.testing import postgres
from libs.platform.testing.postgres import (
    PostgresCluster,
    PostgresError,
    ServerAccount,
    choose_server_account,
)


def _entry(name: str, uid: int, gid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "x", uid, gid, "", "/nonexistent", "/usr/sbin/nologin"))


def users(*entries: pwd.struct_passwd) -> Callable[[str], pwd.struct_passwd]:
    """A fake pwd.getpwnam over these entries: KeyError for any other name."""
    by_name = {e.pw_name: e for e in entries}

    def lookup(name: str) -> pwd.struct_passwd:
        return by_name[name]

    return lookup


POSTGRES = _entry("postgres", 101, 104)
NOBODY = _entry("nobody", 65534, 65534)


def test_non_root_runs_the_cluster_itself() -> None:
    def no_lookups(name: str) -> pwd.struct_passwd:
        raise AssertionError(f"looked up {name} although not root")

    assert choose_server_account(1000, no_lookups) is None


def test_root_prefers_the_postgres_account() -> None:
    got = choose_server_account(0, users(POSTGRES, NOBODY))
    assert got == ServerAccount("postgres", 101, 104)


def test_root_without_postgres_uses_nobody() -> None:
    assert choose_server_account(0, users(NOBODY)) == ServerAccount("nobody", 65534, 65534)


def test_an_account_with_uid_0_is_not_unprivileged() -> None:
    got = choose_server_account(0, users(_entry("postgres", 0, 0), NOBODY))
    assert got == ServerAccount("nobody", 65534, 65534)


def test_root_without_any_account_says_what_to_do() -> None:
    with pytest.raises(PostgresError) as info:
        choose_server_account(0, users(_entry("postgres", 0, 0)))
    message = str(info.value)
    assert "refuses to run as root" in message
    assert "postgres (uid 0)" in message and "nobody (no such user)" in message
    assert "useradd" in message and "MICRO_TEST_DATABASE_URL" in message


def test_no_account_fails_before_making_a_temp_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", users())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(PostgresError, match="no unprivileged account"):
        PostgresCluster(bindir=tmp_path).start()
    assert list(tmp_path.iterdir()) == []


def test_blocked_dir_names_the_first_directory_an_account_cannot_enter(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    closed = outer / "closed"
    inner = closed / "inner"
    inner.mkdir(parents=True)
    closed.chmod(0o710)
    st = closed.stat()
    stranger = ServerAccount("stranger", st.st_uid + 4242, st.st_gid + 4242)
    owner = ServerAccount("owner", st.st_uid, st.st_gid + 4242)
    member = ServerAccount("member", st.st_uid + 4242, st.st_gid)
    # Whatever is above tmp_path (Bazel's or pytest's temp dirs) is reported first.
    above = postgres._blocked_dir(outer, stranger)
    assert postgres._blocked_dir(inner, stranger) == (above or closed)
    assert postgres._blocked_dir(inner, owner) == postgres._blocked_dir(outer, owner)
    assert postgres._blocked_dir(inner, member) == postgres._blocked_dir(outer, member)


def test_a_cluster_runs_without_a_postgres_account(monkeypatch) -> None:
    """As root with no `postgres` user, the cluster runs as nobody, restarts included.

    As another user, the same test checks the cluster runs as that user.
    """
    real = pwd.getpwnam

    def without_postgres(name: str) -> pwd.struct_passwd:
        if name == "postgres":
            raise KeyError(name)
        return real(name)

    monkeypatch.setattr(pwd, "getpwnam", without_postgres)

    async def select_one(dsn: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    with PostgresCluster() as cluster:
        if os.geteuid() == 0:
            assert cluster.account is not None and cluster.account.name == "nobody"
            owner = cluster.account.uid
        else:
            assert cluster.account is None
            owner = os.geteuid()
        assert cluster.datadir.stat().st_uid == owner
        assert asyncio.run(select_one(cluster.admin_dsn)) == 1
        # start_server drops privileges with setpriv rather than subprocess: check it too.
        cluster.stop_server()
        cluster.start_server()
        assert asyncio.run(select_one(cluster.admin_dsn)) == 1
