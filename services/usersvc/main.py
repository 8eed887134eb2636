"""usersvc entry point."""

from __future__ import annotations

import sys

from libs.platform.runner import run_main
from services.usersvc.app import start
from services.usersvc.config import Settings


def main() -> int:
    return run_main("usersvc", Settings, start)


if __name__ == "__main__":
    sys.exit(main())
