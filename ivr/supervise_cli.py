"""``ivr agent transfer ID TO`` / ``ivr agent consult ID (TO | --complete | --cancel |
--conference)``: an operator transfers an agent's call, as the agent API does.

``ivr supervise CALL --listen|--whisper|--barge --phone SUP`` (and ``--end``): an
operator supervises a call of the running stack. The first asks the worker to ring SUP's
phone; another mode on a supervised call switches the same leg (``--phone`` not needed).
Exit status: 0 done, 1 refused (the message says why), 2 the stack is not running."""

from __future__ import annotations

import argparse
import sys

from .ops_cli import _ask


def cmd_supervise(args: argparse.Namespace) -> int:
    mode = args.mode
    out = _ask(args, "call.supervise", {"call_id": args.call_id, "mode": mode,
                                        "phone": args.phone or ""})
    if out is None:
        return int(args.exit_code)
    if mode == "end":
        print(f"{args.call_id}: supervision ended")
    else:
        print(f"{args.call_id}: {out['phone']} {out['mode']}s (agent {out['agent_id']})")
    return 0


def add_supervise_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("supervise", help="listen to, whisper to or barge into an agent's "
                       "call (asks the running stack)")
    p.add_argument("call_id", metavar="CALL")
    how = p.add_mutually_exclusive_group(required=True)
    for mode in ("listen", "whisper", "barge", "end"):
        how.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode,
                         help="end the supervision" if mode == "end" else
                         f"{mode} (switches a supervised call's leg)")
    p.add_argument("--phone", metavar="SUP", help="the supervisor's phone (an agent id) "
                   "to ring")
    p.set_defaults(fn=cmd_supervise, exit_code=0)


def cmd_agent_transfer(args: argparse.Namespace) -> int:
    what = "transfer" if args.agent_cmd == "transfer" else (args.step or "consult")
    if what == "consult" and not args.to:
        print("ivr: consult: give the target (agent:ID, queue:NAME) or --complete, "
              "--cancel, --conference", file=sys.stderr)
        return 1
    out = _ask(args, "agent.transfer", {"agent_id": args.agent_id, "what": what,
                                        "to": args.to or ""})
    if out is None:
        return int(args.exit_code)
    print(f"{out['call_id']}: {what} {out.get('to', '')}".rstrip())
    return 0


def add_transfer_parsers(agent: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``transfer`` and ``consult`` under ``ivr agent``."""
    tr = agent.add_parser("transfer", help="blind-transfer an agent's call (agent:ID, "
                          "queue:NAME, flow:NODE, tel:NUMBER)")
    tr.add_argument("agent_id", metavar="ID")
    tr.add_argument("to", metavar="TO")
    tr.set_defaults(fn=cmd_agent_transfer, exit_code=0, step=None)
    co = agent.add_parser("consult", help="consult on an agent's call, then complete, cancel "
                          "or make it a conference")
    co.add_argument("agent_id", metavar="ID")
    co.add_argument("to", metavar="TO", nargs="?", help="agent:ID or queue:NAME")
    step = co.add_mutually_exclusive_group()
    for name in ("complete", "cancel", "conference"):
        step.add_argument(f"--{name}", dest="step", action="store_const", const=name)
    co.set_defaults(fn=cmd_agent_transfer, exit_code=0, step=None)
