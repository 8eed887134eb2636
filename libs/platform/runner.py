"""Process entry helper: config errors exit 2, SIGTERM/SIGINT trigger a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from libs.platform.config import ConfigError, load_settings
from libs.platform.logs import setup_logging

log = logging.getLogger(__name__)

S = TypeVar("S")


class RunningApp(Protocol):
    port: int

    async def stop(self, grace: float | None = ...) -> None: ...


async def _serve(start: Callable[[S], Awaitable[RunningApp]], settings: S, grace: float) -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    app = await start(settings)
    try:
        await stop_requested.wait()
        log.info("shutdown requested, draining", extra={"grace_s": grace})
    finally:
        await app.stop(grace)


def run_main(
    service: str,
    settings_cls: type[S],
    start: Callable[[S], Awaitable[RunningApp]],
    *,
    grace: float = 10.0,
) -> int:
    """Load settings, set up logs, serve until signalled. Returns the process exit code."""
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 2
    setup_logging(getattr(settings, "log_level", "INFO"), service=service)
    try:
        asyncio.run(_serve(start, settings, grace))
    except Exception:
        log.exception("service failed")
        return 1
    log.info("service stopped")
    return 0
