"""``python -m tests.acd_worker SOCKET``: one call worker (as ``ivr worker``, settings from
the environment) whose controller is the test listening on the Unix socket SOCKET."""

from __future__ import annotations

import asyncio
import faulthandler
import sys
from pathlib import Path

from ivr.config import load_settings
from ivr.logs import setup_logging
from ivr.worker import Worker


def main() -> int:
    settings = load_settings(None)
    setup_logging(settings.log.level, settings.log.format)
    faulthandler.enable()
    asyncio.run(Worker(settings, controller_socket=Path(sys.argv[1]), slot=0).run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
