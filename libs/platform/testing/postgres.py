"""A throwaway PostgreSQL cluster for tests and local runs, plus per-test databases.

If MICRO_TEST_DATABASE_URL is set, that server is used instead of starting a cluster;
throwaway databases are still created on it and dropped afterwards.

The cluster runs as the calling user; a root caller runs it as an unprivileged account
instead (see choose_server_account), because PostgreSQL will not run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from libs.platform.testing.net import free_port
from libs.platform.testing.programs import (
    HOMEBREW_PREFIXES,
    is_executable,
    search_dirs,
    versioned_dirs,
)

# The database superuser initdb creates (a role inside the cluster, not an OS account).
PG_USER = "postgres"

# initdb and postgres refuse to run as root (a server bug would then own the machine), so a
# root caller hands the cluster to the first of these OS accounts that exists and is not
# root: `postgres`, which the PostgreSQL packages create, else `nobody`, which nearly every
# Linux system has (owning files is not its purpose, but the cluster's only files are a temp
# dir that stop() deletes).
SERVER_ACCOUNTS = ("postgres", "nobody")


class PostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerAccount:
    """The unprivileged OS account a root caller runs initdb, pg_ctl and the server as."""

    name: str
    uid: int
    gid: int


def choose_server_account(
    euid: int,
    lookup: Callable[[str], pwd.struct_passwd] | None = None,
    candidates: Iterable[str] = SERVER_ACCOUNTS,
) -> ServerAccount | None:
    """Whom the cluster runs as: None for the caller itself, unless the caller is root.

    `lookup` keeps pwd.getpwnam's contract (KeyError for an unknown name), so tests can pass
    a fake user database; the default is looked up at call time so tests can also patch it.
    Raises PostgresError when root and no candidate can be used.
    """
    if euid != 0:
        return None
    lookup = lookup or pwd.getpwnam
    rejected: list[str] = []
    for name in candidates:
        try:
            entry = lookup(name)
        except KeyError:
            rejected.append(f"{name} (no such user)")
            continue
        if entry.pw_uid == 0:
            # An alias of root would be refused by PostgreSQL just the same.
            rejected.append(f"{name} (uid 0)")
            continue
        return ServerAccount(name, entry.pw_uid, entry.pw_gid)
    raise PostgresError(
        "PostgreSQL refuses to run as root, and no unprivileged account to run it as was "
        f"found: tried {', '.join(rejected) or 'nothing'}. Create one (e.g. `useradd --system "
        "postgres`), run as a non-root user, or set MICRO_TEST_DATABASE_URL to an existing "
        "server."
    )


def _blocked_dir(path: Path, account: ServerAccount) -> Path | None:
    """The first directory on the way to `path` that `account` may not enter, if any.

    Only mode bits are checked (the server drops supplementary groups, so the account's
    primary group is its only one); used to explain a failure, never to refuse a start,
    since ACLs may allow more than the mode bits say.
    """
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError:
            return directory
        if st.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


# What find_bindir looks for: every cluster needs both.
PG_SERVER_PROGRAMS = ("initdb", "pg_ctl")
# Debian and Ubuntu install each major version's server programs here, off PATH.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def _holds_server_programs(directory: Path) -> bool:
    return all(is_executable(directory / name) for name in PG_SERVER_PROGRAMS)


def _pg_config_bindir(pg_config: Path) -> Path | None:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [str(pg_config), "--bindir"], check=True, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def find_bindir(
    env: Mapping[str, str] | None = None,
    prefixes: Sequence[Path] = HOMEBREW_PREFIXES,
    debian_root: Path = DEBIAN_PG_ROOT,
) -> Path:
    """The directory holding initdb and pg_ctl: the first of these that holds both.

    1. MICRO_PG_BINDIR.
    2. Each directory of PATH, then Homebrew's bin directories (programs.search_dirs): the
       `pg_config --bindir` of a pg_config there, else the directory itself (distributions
       that put initdb on PATH may ship pg_config only in a -devel package).
    3. Homebrew's versioned kegs, <prefix>/opt/postgresql@NN/bin, highest NN first: those
       formulae are keg-only, so `brew install postgresql@17` puts nothing on any PATH.
    4. Debian's /usr/lib/postgresql/NN/bin, highest NN first: Debian puts only wrappers (and
       libpq-dev's pg_config) on PATH.

    `env` (default os.environ), `prefixes` and `debian_root` are parameters so tests can
    point them at a temporary tree.
    """
    env = os.environ if env is None else env
    explicit = env.get("MICRO_PG_BINDIR")
    dirs = search_dirs(env, prefixes)
    kegs = versioned_dirs("postgresql@*", [p / "opt" for p in prefixes])
    debian = versioned_dirs("*", [debian_root])

    def candidates() -> Iterator[Path]:
        # A generator, so pg_config runs only when nothing before it was found.
        if explicit:
            yield Path(explicit)
        for directory in dirs:
            pg_config = directory / "pg_config"
            bindir = _pg_config_bindir(pg_config) if is_executable(pg_config) else None
            if bindir:
                yield bindir
            yield directory
        yield from kegs
        yield from debian

    for cand in candidates():
        if _holds_server_programs(cand):
            return cand
    looked = [
        f"MICRO_PG_BINDIR={explicit}" if explicit else "MICRO_PG_BINDIR (not set)",
        f"pg_config and initdb in {os.pathsep.join(map(str, dirs)) or '(no directories)'}",
        *map(str, kegs),
        *map(str, debian),
    ]
    if not kegs:
        looked.append(f"no postgresql@NN under {', '.join(str(p / 'opt') for p in prefixes)}")
    if not debian:
        looked.append(f"nothing under {debian_root}")
    raise PostgresError(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found. Install PostgreSQL "
        "(macOS: `brew install postgresql@17`; Debian/Ubuntu: `apt install postgresql`) or "
        "set MICRO_PG_BINDIR to the directory that holds them. Looked at: " + "; ".join(looked)
    )


def with_database(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class PostgresCluster:
    """initdb + pg_ctl in a temp dir; use as a context manager or call start()/stop()."""

    def __init__(self, bindir: Path | None = None, *, durable: bool = False) -> None:
        self.bindir = bindir or find_bindir()
        # Tests throw the cluster away, so by default it skips the flushes that make a
        # commit survive a crash; benchmarks want production's commit cost.
        self.durable = durable
        self.tmpdir: Path | None = None
        self.port = 0
        # Set by start() when the caller is root: see choose_server_account.
        self.account: ServerAccount | None = None
        self._run_as: dict[str, Any] = {}

    @property
    def _tmp(self) -> Path:
        assert self.tmpdir is not None, "the cluster has not been started"
        return self.tmpdir

    @property
    def datadir(self) -> Path:
        return self._tmp / "data"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def _account_hint(self) -> str:
        """Why a start as another account may have failed, for error messages."""
        if self.account is None:
            return ""
        acct = self.account
        hint = (
            f"\n(ran as {acct.name}, uid {acct.uid}, because PostgreSQL refuses to run as "
            "root; that account must be able to enter the data directory and run initdb)"
        )
        for path, fix in (
            (self.tmpdir, "set TMPDIR to a directory every user can enter, e.g. /tmp"),
            (self.bindir, "set MICRO_PG_BINDIR to binaries every user can run"),
        ):
            blocked = _blocked_dir(path, acct) if path else None
            if blocked is not None:
                hint += f"\n{acct.name} cannot enter {blocked}, on the way to {path}: {fix}"
        return hint

    def _run(self, *argv: str, timeout: float = 60) -> None:
        try:
            proc = subprocess.run(  # noqa: S603 - argv built from our own paths
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.tmpdir,
                check=False,
                **self._run_as,
            )
        except OSError as exc:  # e.g. not executable by the account we dropped to
            raise PostgresError(
                f"{Path(argv[0]).name} could not run: {exc}{self._account_hint()}"
            ) from exc
        if proc.returncode != 0:
            log = self.tmpdir / "postgres.log" if self.tmpdir else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise PostgresError(
                f"{Path(argv[0]).name} failed ({proc.returncode}):\n{proc.stdout}\n"
                f"{proc.stderr}\n{tail}{self._account_hint()}"
            )

    def start(self) -> Self:
        # Chosen before the temp dir exists, so a missing account leaves nothing behind.
        self.account = choose_server_account(os.geteuid())
        self.tmpdir = Path(tempfile.mkdtemp(prefix="micro-pg-"))
        try:
            if self.account is not None:
                # Root: the cluster's directory and processes belong to that account.
                os.chown(self.tmpdir, self.account.uid, self.account.gid)
                self._run_as = {
                    "user": self.account.uid,
                    "group": self.account.gid,
                    "extra_groups": [],
                    "env": {**os.environ, "HOME": str(self.tmpdir), "USER": self.account.name},
                }
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            last: Exception | None = None
            for _ in range(3):  # the free port can be taken between probe and bind
                self.port = free_port()
                try:
                    self._pg_ctl_start()
                    return self
                except PostgresError as exc:
                    last = exc
            raise PostgresError(f"could not start PostgreSQL: {last}")
        except BaseException:
            self.stop()
            raise

    def _server_options(self) -> str:
        flushes = (
            ""
            if self.durable
            else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        )
        return (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.datadir} "
            f"{flushes}-c max_connections=300"
        )

    def _start_argv(self, *wait_options: str) -> list[str]:
        """pg_ctl's start command for this cluster; `wait_options` go before `start`."""
        assert self.tmpdir is not None
        return [
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.tmpdir / "postgres.log"),
            "-o",
            self._server_options(),
            "-w",
            *wait_options,
            "start",
        ]

    def _pg_ctl_start(self) -> None:
        self._run(*self._start_argv("-t", "60"), timeout=90)

    # Outage simulation runs while the test process has gRPC threads busy. fork() then runs
    # gRPC's atfork handlers, which can crash the child, so these two avoid fork():
    # stopping is a signal to the postmaster, starting uses posix_spawn.
    _STOP_SIGNALS: ClassVar[dict[str, signal.Signals]] = {
        "smart": signal.SIGTERM,
        "fast": signal.SIGINT,
        "immediate": signal.SIGQUIT,
    }

    def stop_server(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the server but keep its data, to simulate an outage (see start_server).

        "fast" closes client connections and the port at once; "immediate" is a crash.
        """
        pidfile = self.datadir / "postmaster.pid"
        pid = int(pidfile.read_text().split("\n", 1)[0])
        os.kill(pid, self._STOP_SIGNALS[mode])
        deadline = time.monotonic() + timeout
        while pidfile.exists():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL (pid {pid}) did not stop in {timeout}s")
            time.sleep(0.02)

    def start_server(self, timeout: float = 60) -> None:
        """Start a server stopped by stop_server again, on the same port with the same data."""
        argv = self._start_argv()
        path = argv[0]
        env = dict(os.environ)
        if self.account is not None:
            # posix_spawn cannot change users itself, so setpriv (util-linux) does it.
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise PostgresError(
                    f"setpriv (util-linux) not found: needed to restart PostgreSQL as "
                    f"{self.account.name}, because it refuses to run as root"
                )
            # Numeric ids: the same account start() ran initdb as, whatever its name.
            path = setpriv
            argv = [
                setpriv,
                f"--reuid={self.account.uid}",
                f"--regid={self.account.gid}",
                "--clear-groups",
                *argv,
            ]
            env = self._run_as["env"]
        out = os.open(str(self._tmp / "pg_ctl.out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            pid = os.posix_spawn(
                path,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, out, 1),
                    (os.POSIX_SPAWN_DUP2, out, 2),
                ],
            )
        finally:
            os.close(out)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                raise PostgresError(f"pg_ctl start did not finish in {timeout}s")
            time.sleep(0.02)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            output = (self._tmp / "pg_ctl.out").read_text(errors="replace")
            raise PostgresError(f"pg_ctl start failed ({code}):\n{output}")

    def stop(self) -> None:
        if self.tmpdir is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        except (PostgresError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def create_database(admin_dsn: str, name: str | None = None) -> str:
    """Create a database and return its DSN."""
    name = name or f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
