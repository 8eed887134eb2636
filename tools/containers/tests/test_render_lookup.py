"""Which renderer kustomize_command picks: env KUSTOMIZE, then PATH, then Homebrew's bin.

Fake prefixes in a temporary directory stand in for /opt/homebrew and /usr/local.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.containers.render import RenderError, kustomize_command


def tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def path_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "path/bin"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def prefixes(tmp_path: Path) -> tuple[Path, Path]:
    return (tmp_path / "opt/homebrew", tmp_path / "usr/local")


def test_the_env_var_wins(path_dir: Path, prefixes: tuple[Path, Path]) -> None:
    tool(path_dir, "kustomize")
    env = {"PATH": str(path_dir), "KUSTOMIZE": "/somewhere/kustomize"}
    assert kustomize_command(env, prefixes) == ["/somewhere/kustomize", "build"]


def test_path_comes_before_homebrew(path_dir: Path, prefixes: tuple[Path, Path]) -> None:
    on_path = tool(path_dir, "kustomize")
    tool(prefixes[0] / "bin", "kustomize")
    assert kustomize_command({"PATH": str(path_dir)}, prefixes) == [str(on_path), "build"]


def test_homebrews_kustomize_is_found_off_path(path_dir: Path, prefixes: tuple[Path, Path]) -> None:
    # Apple silicon: /opt/homebrew/bin is not on Bazel's strict PATH.
    brewed = tool(prefixes[0] / "bin", "kustomize")
    tool(prefixes[1] / "bin", "kustomize")
    assert kustomize_command({"PATH": str(path_dir)}, prefixes) == [str(brewed), "build"]


def test_kustomize_anywhere_beats_kubectl(path_dir: Path, prefixes: tuple[Path, Path]) -> None:
    tool(path_dir, "kubectl")
    brewed = tool(prefixes[1] / "bin", "kustomize")
    assert kustomize_command({"PATH": str(path_dir)}, prefixes) == [str(brewed), "build"]


def test_kubectl_when_there_is_no_kustomize(path_dir: Path, prefixes: tuple[Path, Path]) -> None:
    kubectl = tool(prefixes[0] / "bin", "kubectl")
    assert kustomize_command({"PATH": str(path_dir)}, prefixes) == [str(kubectl), "kustomize"]


def test_nothing_found_says_what_to_install_and_set(
    path_dir: Path, prefixes: tuple[Path, Path]
) -> None:
    with pytest.raises(RenderError) as err:
        kustomize_command({"PATH": str(path_dir)}, prefixes)
    message = str(err.value)
    assert "brew install kustomize" in message
    assert "KUSTOMIZE=" in message
    assert str(prefixes[0] / "bin") in message
