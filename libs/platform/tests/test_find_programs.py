"""Finding PostgreSQL's server programs and other host tools: env var, PATH, then Homebrew.

Every test builds fake prefixes in a temporary directory and passes them in, with its own
environment, so the machine's real /opt/homebrew, /usr/lib/postgresql and PATH decide
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.platform.testing.postgres import PostgresError, find_bindir
from libs.platform.testing.programs import find_program, search_dirs, versioned_dirs


def tool(directory: Path, name: str, script: str = "exit 0\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}")
    path.chmod(0o755)
    return path


def server_bindir(directory: Path) -> Path:
    """A directory with fake initdb and pg_ctl, which is all find_bindir checks for."""
    tool(directory, "initdb")
    tool(directory, "pg_ctl")
    return directory


class Tree:
    """Fake Homebrew prefixes, a Debian root and PATH directories under one temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.arm = root / "opt/homebrew"
        self.intel = root / "usr/local"
        self.prefixes = (self.arm, self.intel)
        self.debian = root / "usr/lib/postgresql"
        self.path_dir = root / "path/bin"
        self.path_dir.mkdir(parents=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": str(self.path_dir), **extra}

    def bindir(self, **extra: str) -> Path:
        return find_bindir(self.env(**extra), self.prefixes, self.debian)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_the_env_var_wins_over_everything(tree: Tree) -> None:
    chosen = server_bindir(tree.root / "mine")
    server_bindir(tree.path_dir)
    server_bindir(tree.arm / "opt/postgresql@17/bin")
    server_bindir(tree.debian / "17/bin")
    assert tree.bindir(MICRO_PG_BINDIR=str(chosen)) == chosen


def test_a_wrong_env_var_falls_back_to_the_search(tree: Tree) -> None:
    server_bindir(tree.path_dir)
    assert tree.bindir(MICRO_PG_BINDIR=str(tree.root / "missing")) == tree.path_dir


def test_pg_config_on_path_names_the_bindir(tree: Tree) -> None:
    real = server_bindir(tree.root / "pg/17/bin")
    tool(tree.path_dir, "pg_config", f'[ "$1" = --bindir ] && echo "{real}"\n')
    server_bindir(tree.arm / "bin")
    server_bindir(tree.arm / "opt/postgresql@17/bin")
    assert tree.bindir() == real


def test_initdb_on_path_beats_homebrew(tree: Tree) -> None:
    server_bindir(tree.path_dir)
    server_bindir(tree.arm / "bin")
    server_bindir(tree.arm / "opt/postgresql@17/bin")
    assert tree.bindir() == tree.path_dir


def test_homebrews_linked_bin_is_searched_after_path(tree: Tree) -> None:
    # `brew link postgresql@17`, on Apple silicon: /opt/homebrew/bin, off Bazel's PATH.
    server_bindir(tree.arm / "bin")
    server_bindir(tree.debian / "17/bin")
    assert tree.bindir() == tree.arm / "bin"


def test_homebrews_keg_with_the_highest_version_is_chosen(tree: Tree) -> None:
    server_bindir(tree.arm / "opt/postgresql@9.6/bin")
    server_bindir(tree.arm / "opt/postgresql@16/bin")
    server_bindir(tree.intel / "opt/postgresql@17/bin")
    server_bindir(tree.arm / "opt/postgresql@15/bin")
    server_bindir(tree.debian / "18/bin")
    # A keg without the server programs (a partial install) is passed over.
    (tree.arm / "opt/postgresql@18/bin").mkdir(parents=True)
    assert tree.bindir() == tree.intel / "opt/postgresql@17/bin"


def test_equal_versions_prefer_apple_silicons_prefix(tree: Tree) -> None:
    server_bindir(tree.intel / "opt/postgresql@17/bin")
    server_bindir(tree.arm / "opt/postgresql@17/bin")
    assert tree.bindir() == tree.arm / "opt/postgresql@17/bin"


def test_debians_newest_version_comes_last(tree: Tree) -> None:
    server_bindir(tree.debian / "15/bin")
    server_bindir(tree.debian / "17/bin")
    assert tree.bindir() == tree.debian / "17/bin"


def test_nothing_found_says_what_to_install_and_set(tree: Tree) -> None:
    # pg_config alone (libpq) is not enough: the server programs are what the tests run.
    tool(tree.arm / "opt/libpq/bin", "pg_config")
    with pytest.raises(PostgresError) as err:
        tree.bindir()
    message = str(err.value)
    assert "initdb, pg_ctl" in message
    assert "brew install postgresql@17" in message
    assert "apt install postgresql" in message
    assert "MICRO_PG_BINDIR (not set)" in message
    assert str(tree.arm / "bin") in message
    assert str(tree.debian) in message


def test_search_dirs_are_path_then_each_prefix_once(tree: Tree) -> None:
    env = {"PATH": os.pathsep.join([str(tree.path_dir), "", str(tree.intel / "bin")])}
    assert search_dirs(env, tree.prefixes) == [tree.path_dir, tree.intel / "bin", tree.arm / "bin"]


def test_find_program_skips_what_is_not_executable(tree: Tree) -> None:
    (tree.path_dir / "kustomize").write_text("not a program")
    found = tool(tree.arm / "bin", "kustomize")
    assert find_program("kustomize", tree.env(), tree.prefixes) == found
    assert find_program("kubectl", tree.env(), tree.prefixes) is None


def test_versioned_dirs_sort_numerically(tree: Tree) -> None:
    for ver in ["9.6", "10", "17", "unversioned"]:
        (tree.debian / ver / "bin").mkdir(parents=True)
    names = [d.parent.name for d in versioned_dirs("*", [tree.debian])]
    assert names == ["17", "10", "9.6", "unversioned"]
