"""Operator requests to the running controller: ``ivr agent state|wrapup|show`` and
``ivr queue show`` ask it over its socket (``var/run/controller.sock``).

A ``cli`` peer says ``hello`` (role ``cli``), then sends ``ops.request`` lines
``{id, op, args}`` and gets one ``ops.reply`` ``{id, ok, data | error}`` for each. Only a
process of the controller's own user (or root) is admitted (``SO_PEERCRED``). The handler
here is plain: it takes the desk and the ACD service, no socket.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from .acd import EntryState
from .acd import metrics as acd_metrics
from .acd_service import AcdService
from .agent_desk import Desk, start_of_day
from .desk import DeskError
from .protocol import PROTOCOL_VERSION, encode


class OpsError(Exception):
    """The request could not be done; the message says why, for the operator."""


def _text(args: dict[str, Any], name: str, required: bool = True) -> str:
    value = args.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise OpsError(f"{name!r} must be a non-empty string")
    return value


def handle(service: AcdService, desk: Desk, op: str, args: dict[str, Any],
           now: float) -> dict[str, Any]:
    """Carry out one operator request; OpsError for a bad one (nothing changed)."""
    try:
        if op == "agent.state":
            return desk.set_state(_text(args, "agent_id"), _text(args, "state"),
                                  _text(args, "reason", required=False))
        if op == "agent.wrapup":
            return desk.wrapup(_text(args, "agent_id"), _text(args, "code"),
                               _text(args, "note", required=False))
        if op == "agent.show":
            agent_id = _text(args, "agent_id")
            view = desk.agent(agent_id)
            if view is None:
                raise OpsError(f"no agent {agent_id!r} in the ACD")
            return {**view, "figures": desk.figures_today(agent_id)}
        if op == "agent.transfer":
            return desk.transfer_request(_text(args, "agent_id"), _text(args, "what"),
                                         _text(args, "to", required=False))
        if op == "call.supervise":
            call_id, mode = _text(args, "call_id"), _text(args, "mode")
            phone = _text(args, "phone", required=False)
            active = service.supervision.active.get(call_id)
            if mode == "end":
                return desk.supervise(None, call_id, "", action="end")
            if active is not None and phone in ("", active.supervisor):
                return desk.supervise(None, call_id, mode, action="switch")
            if not phone:
                raise OpsError("--phone SUP: the supervisor's phone to ring")
            return desk.supervise(None, call_id, mode, phone, "start")
        if op == "queue.show":
            return queue_show(service, _text(args, "queue", required=False) or None, now)
    except DeskError as exc:
        raise OpsError(str(exc)) from None
    raise OpsError(f"unknown request {op!r}")


def queue_show(service: AcdService, name: str | None, now: float) -> dict[str, Any]:
    acd = service.acd
    if name is not None and name not in acd.queues:
        raise OpsError(f"no queue {name!r} (queues: {', '.join(acd.queues)})")
    since = start_of_day(now)
    out = []
    for qname in [name] if name else list(acd.queues):
        queue = acd.queues[qname]
        figures = acd_metrics.queue_figures(
            service.rows_today, qname, now, service_level_s=queue.cfg.service_level_s,
            short_abandon_s=queue.cfg.short_abandon_s, since=since)
        entries = [e for e in acd.entries.values() if e.queue == qname
                   and e.state is not EntryState.CONNECTED]
        entries.sort(key=lambda e: e.key)
        waiting = [{"call_id": e.call_id, "caller": e.caller, "priority": e.priority,
                    "wait_s": round(now - e.enter_at, 1), "state": e.state.value,
                    "kind": e.kind, "number": e.number}
                   for e in entries]
        agents = [{"id": a.agent_id, "name": a.name, "state": a.state.value,
                   "reason": a.reason,
                   # None: never signed in since the stack started
                   "in_state_s": round(now - a.state_since, 1) if a.state_since else None}
                  for a in (acd.agents[x] for x in queue.members)]
        out.append({"queue": qname, "strategy": queue.cfg.strategy, "waiting": waiting,
                    "agents": agents, "figures": figures.__dict__})
    return {"queues": out}


def request(socket_path: Path, op: str, args: dict[str, Any],
            timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask the running controller; OpsError when it is not running or refuses."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(str(socket_path))
        except OSError as exc:
            raise OpsError(f"the stack is not running ({socket_path}: {exc.strerror})") \
                from None
        sock.sendall(encode("hello", role="cli", protocol=PROTOCOL_VERSION)
                     + encode("ops.request", id=1, op=op, args=args))
        reader = sock.makefile("rb")
        line = reader.readline()
    except TimeoutError:
        raise OpsError(f"the controller did not answer within {timeout_s:g} s") from None
    finally:
        sock.close()
    if not line:
        raise OpsError("the controller closed the connection (refused: not the stack's user?)")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise OpsError(str(reply.get("error", "refused")))
    data = reply.get("data")
    return data if isinstance(data, dict) else {}
