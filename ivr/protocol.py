"""The controller's local protocol: JSON objects, one per line, over a Unix stream socket.

Every message is ``{"type": ..., ...}``. Peers introduce themselves first with ``hello``.

Worker -> controller::

    hello   {role: "worker", protocol, worker, slot, pid, sip, max_calls, flow, flow_version}
    store   {op, call_id, at, args}      one call-record write (see STORE_OPS), in order
    stats   {legs, state}                on every change of live legs, and every heartbeat_s
    state   {state}                      serving / draining / stopping

Zygote (the warm parent) -> controller::

    hello   {role: "zygote", protocol, pid}
    spawned {slot, pid}
    exited  {slot, pid, exit_code, signal}

Controller -> zygote::

    spawn   {slot, name, sip_port, rtp_port_start, rtp_port_range}
    quit    {}

Controller -> worker::

    drain   {timeout_s}                  stop taking calls, finish, exit (as SIGTERM does)
    reload  {}                           load the flow and prompt sets again for new calls

Controller -> zygote also ``reload``: later forks get the new flow and prompts.

Later issues add ACD messages (``queue``, ``connect_agent`` ...) without changing these.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20

# The CallStore methods a worker may ask the controller to apply, with their keyword args.
STORE_OPS: dict[str, frozenset[str]] = {
    "call_arrived": frozenset(
        {"sip_call_id", "worker", "from_uri", "to_uri", "flow", "flow_version"}),
    "call_answered": frozenset({"codec", "telephone_event", "inband_dtmf"}),
    "call_dtmf": frozenset({"digit", "method", "node"}),
    "call_node": frozenset({"node", "node_type"}),
    "call_menu_choice": frozenset({"node", "key", "target"}),
    "call_event": frozenset({"kind", "data"}),
    "call_ended": frozenset({"reason", "hangup_by", "sip_code", "sip_reason"}),
}


class ProtocolError(Exception):
    """A message that is not valid for this protocol; the text says what was wrong."""


def encode(msg_type: str, **fields: Any) -> bytes:
    return (json.dumps({"type": msg_type, **fields}, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    try:
        msg = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON object: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a message is a JSON object with a string 'type'")
    return msg


def check_store_op(msg: dict[str, Any]) -> tuple[str, str, float, dict[str, Any]]:
    """Validate a ``store`` message; returns (op, call_id, at, args)."""
    op = msg.get("op")
    if op not in STORE_OPS:
        raise ProtocolError(f"unknown store op {op!r}")
    call_id, at, args = msg.get("call_id"), msg.get("at"), msg.get("args")
    if not isinstance(call_id, str) or not isinstance(at, (int, float)):
        raise ProtocolError(f"store {op}: call_id must be a string and at a number")
    if not isinstance(args, dict):
        raise ProtocolError(f"store {op}: args must be an object")
    unknown = set(args) - STORE_OPS[op]
    missing = STORE_OPS[op] - set(args)
    if unknown or missing:
        raise ProtocolError(
            f"store {op}: unknown args {sorted(unknown)}, missing args {sorted(missing)}")
    return op, call_id, float(at), args
