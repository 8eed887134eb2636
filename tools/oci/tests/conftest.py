from __future__ import annotations

from collections.abc import Callable

import pytest

from libs.platform.testing.fixtures import (  # noqa: F401 - pytest fixtures
    pg_admin_dsn,
    pytest_configure,
)

_MEASURED = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def measured(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Records a line for the end-of-run summary: pytest captures what tests print, but the
    summary always reaches the test log (bazel-testlogs/.../test.log)."""
    return request.config.stash.setdefault(_MEASURED, []).append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_MEASURED, [])
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)
