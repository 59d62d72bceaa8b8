"""``ivr agent state|wrapup|show`` and ``ivr queue show``: asking the running stack.

    ivr agent state ID ready | not-ready [--reason R] | logged-out
    ivr agent wrapup ID CODE [--note TEXT]
    ivr agent show ID
    ivr queue show [NAME] [--json]

They talk to the controller over its socket (``ivr/ops.py``). Exit status: 0 done, 1 refused
(the message says why; nothing changed), 2 the stack is not running.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .ops import OpsError, request


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _ask(args: argparse.Namespace, op: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    socket_path = _settings(args).run_dir / "controller.sock"
    try:
        return request(socket_path, op, payload)
    except OpsError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        args.exit_code = 2 if "not running" in str(exc) else 1
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def _agent_line(view: dict[str, Any]) -> str:
    state = view["state"] + (f" ({view['reason']})" if view.get("reason") else "")
    return f"{view['id']:<8} {view.get('name', ''):<20} {state}"


def cmd_agent_state(args: argparse.Namespace) -> int:
    state = args.state.replace("-", "_")
    view = _ask(args, "agent.state", {"agent_id": args.agent_id, "state": state,
                                      "reason": args.reason or ""})
    if view is None:
        return int(args.exit_code)
    print(_agent_line(view))
    if view["state"] in ("on_call", "wrap_up") and state != view["state"]:
        print(f"  {state} is taken when the current call and its wrap-up end")
    return 0


def cmd_agent_wrapup(args: argparse.Namespace) -> int:
    view = _ask(args, "agent.wrapup", {"agent_id": args.agent_id, "code": args.code,
                                       "note": args.note or ""})
    if view is None:
        return int(args.exit_code)
    print(f"{args.agent_id}: code {args.code} recorded; now {view['state']}")
    return 0


def cmd_agent_show(args: argparse.Namespace) -> int:
    view = _ask(args, "agent.show", {"agent_id": args.agent_id})
    if view is None:
        return int(args.exit_code)
    print(_agent_line(view))
    queues = ", ".join(f"{q}:{level}" for q, level in view["queues"].items())
    print(f"  queues      {queues}")
    call = view.get("call")
    if call:
        print(f"  call        {call['call_id']} ({call['state']}) from {call['caller'] or '?'} "
              f"via {call['queue']}, waited {call['wait_s']:.0f} s")
        for key, value in sorted(call.get("data", {}).items()):
            print(f"    {key:<12} {value}")
    figures = view["figures"]
    print(f"  today       {figures['calls_handled']} calls, talk {_duration(figures['talk_s'])}"
          f", missed {figures['missed']}")
    return 0


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def cmd_queue_show(args: argparse.Namespace) -> int:
    data = _ask(args, "queue.show", {"queue": args.name or ""})
    if data is None:
        return int(args.exit_code)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for q in data["queues"]:
        f = q["figures"]
        print(f"{q['queue']} ({q['strategy']}): {f['calls_waiting']} waiting, longest "
              f"{_secs(f['longest_wait_s'])}; today {f['offered']} offered, "
              f"{f['answered']} answered, SL {_percent(f['service_level'])}, ASA "
              f"{_secs(f['asa_s'])}, abandoned {_percent(f['abandon_rate'])}, AHT "
              f"{_secs(f['aht_s'])}")
        for w in q["waiting"]:
            kind = f"  {w['kind']} {w['number']}" if w.get("kind", "call") != "call" else ""
            print(f"  caller {w['caller'] or '?':<14} waiting {_duration(w['wait_s']):>6}"
                  f"  priority {w['priority']}  {w['state']}  {w['call_id']}{kind}")
        for a in q["agents"]:
            state = a["state"] + (f" ({a['reason']})" if a["reason"] else "")
            since = "-" if a["in_state_s"] is None else _duration(a["in_state_s"])
            print(f"  agent  {a['id']:<8} {a['name']:<20} {state:<22} {since:>6}")
    return 0


def add_ops_parsers(agent: argparse._SubParsersAction[argparse.ArgumentParser],
                    sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``agent state|wrapup|show`` under ``ivr agent``; ``queue show`` under ``ivr``."""
    st = agent.add_parser("state", help="sign an agent in or out, or pause them "
                          "(asks the running stack)")
    st.add_argument("agent_id", metavar="ID")
    st.add_argument("state", choices=["ready", "not-ready", "logged-out"])
    st.add_argument("--reason", help="why not ready (the ACD file's not_ready_reasons)")
    st.set_defaults(fn=cmd_agent_state, exit_code=0)
    wr = agent.add_parser("wrapup", help="give the disposition code of an agent's last call")
    wr.add_argument("agent_id", metavar="ID")
    wr.add_argument("code", help="a code of the ACD file's call_reasons, e.g. billing/refund")
    wr.add_argument("--note", help="free text kept with the code")
    wr.set_defaults(fn=cmd_agent_wrapup, exit_code=0)
    sh = agent.add_parser("show", help="an agent's state, current call and figures today")
    sh.add_argument("agent_id", metavar="ID")
    sh.set_defaults(fn=cmd_agent_show, exit_code=0)
    queue = sub.add_parser("queue", help="queues of the running stack").add_subparsers(
        dest="queue_cmd", required=True)
    qs = queue.add_parser("show", help="waiting callers, agents and today's figures")
    qs.add_argument("name", nargs="?", help="one queue (default: all)")
    qs.add_argument("--json", action="store_true", help="print the data as JSON")
    qs.set_defaults(fn=cmd_queue_show, exit_code=0)
