"""paymentsvc entry point."""

from __future__ import annotations

import sys

from libs.platform.runner import run_main
from services.paymentsvc.app import start
from services.paymentsvc.config import Settings


def main() -> int:
    return run_main("paymentsvc", Settings, start)


if __name__ == "__main__":
    sys.exit(main())
