"""``ivr acd check FILE...``: validate ACD files (queues, agents, call reasons)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .config import AcdConfigError, load_acd


def cmd_acd_check(args: argparse.Namespace) -> int:
    failed = False
    files = args.files
    if not files:
        from ..config import load_settings

        files = [str(load_settings(Path(args.config) if args.config else None).paths.acd)]
    for name in files:
        try:
            cfg = load_acd(Path(name))
        except AcdConfigError as exc:
            for issue in exc.issues:
                print(f"{issue}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: ok ({len(cfg.queues)} queues: {', '.join(cfg.queues)}; "
              f"{len(cfg.agents)} agents; {len(cfg.reason_codes())} call-reason codes)")
    return 1 if failed else 0


def add_acd_parser(sub: Any) -> None:
    acd = sub.add_parser("acd", help="ACD file tools").add_subparsers(dest="acd_cmd",
                                                                      required=True)
    check = acd.add_parser("check", help="validate ACD files (default: paths.acd)")
    check.add_argument("files", nargs="*")
    check.set_defaults(fn=cmd_acd_check)
