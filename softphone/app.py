"""``softphone``: the agent's desktop softphone; ``softphone --headless`` runs it without a
window (softphone/headless.py). docs/softphone.md tells how to use it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import headless


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softphone", description="The agent's softphone.")
    p.add_argument("--headless", action="store_true",
                   help="no window: commands on stdin, state as JSON lines on stdout")
    p.add_argument("--log-level", default="WARNING")
    headless.add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.headless:
        return asyncio.run(headless.run(args))
    try:
        from .desktop import run_window
    except ImportError as exc:
        print(f"softphone: the window needs PySide6 ({exc}); or use --headless",
              file=sys.stderr)
        return 2
    return int(run_window(args))


if __name__ == "__main__":
    sys.exit(main())
