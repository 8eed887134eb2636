"""authsvc entry point."""

from __future__ import annotations

import sys

from libs.platform.runner import run_main
from services.authsvc.app import start
from services.authsvc.config import Settings


def main() -> int:
    return run_main("authsvc", Settings, start)


if __name__ == "__main__":
    sys.exit(main())
