"""``ivr emergency on|off|show``: storm mode in the running stack (``ivr/emergency.py``).

    ivr emergency on QUEUE --prompt NAME [--expires 2h] [--outage-key 1] [--offer-callback]
    ivr emergency off QUEUE
    ivr emergency show [--json]

Asked of the controller over its socket, like ``ivr queue show``. Exit status: 0 done,
1 refused (the message says why; nothing changed), 2 the stack is not running.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .ops_cli import _ask


def _print(data: dict[str, Any]) -> None:
    notices = data["emergencies"]
    if not notices:
        print("no emergency message is on")
    for n in notices:
        until = ("until switched off" if n["expires_at"] is None else
                 "until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n["expires_at"])))
        key = f", outage key {n['outage_key']}" if n["outage_key"] else ""
        callback = ", callback offered" if n.get("offer_callback") else ""
        print(f"{n['queue']}: prompt {n['prompt']} {until}{key}{callback}")


def cmd_emergency(args: argparse.Namespace) -> int:
    if args.emergency_cmd == "on":
        payload = {"queue": args.queue, "prompt": args.prompt, "expires": args.expires or "",
                   "outage_key": args.outage_key or "",
                   "offer_callback": bool(args.offer_callback)}
    elif args.emergency_cmd == "off":
        payload = {"queue": args.queue}
    else:
        payload = {}
    data = _ask(args, f"emergency.{args.emergency_cmd}", payload)
    if data is None:
        return int(args.exit_code)
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2))
    else:
        _print(data)
    return 0


def add_emergency_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    em = sub.add_parser("emergency", help="storm mode: an emergency message before a "
                        "queue's greeting (asks the running stack)").add_subparsers(
        dest="emergency_cmd", required=True)
    on = em.add_parser("on", help="play PROMPT to every caller entering QUEUE")
    on.add_argument("queue", metavar="QUEUE")
    on.add_argument("--prompt", required=True, help="a prompt name in every prompt set")
    on.add_argument("--expires", help="switch off by itself after this: 2h, 90m, 1h30m")
    on.add_argument("--outage-key", help="offer: press this key if the call is about the "
                    "outage (ends the call with a report)")
    on.add_argument("--offer-callback", action="store_true",
                    help="follow the message with the queue's callback offer (a queue with "
                    "callback: in the ACD file)")
    off = em.add_parser("off", help="stop the emergency message of QUEUE")
    off.add_argument("queue", metavar="QUEUE")
    show = em.add_parser("show", help="the emergency messages that are on")
    show.add_argument("--json", action="store_true")
    for p in (on, off, show):
        p.set_defaults(fn=cmd_emergency, exit_code=0)
