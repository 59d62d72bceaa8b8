"""Transfers, consults and conferences in the controller: what ``AcdService`` does with
the core's transfer actions (``ivr/acd/transfer_events.py``) and the workers' transfer
messages (``ivr/transfer_messages.py``), and the requests agents make (API, CLI, phone).

Agents' screens are told (their WebSocket, ``ivr/desk.py``)::

    {"event": "transferred", "at", "call_id", "to", "by", "kind": "blind" | "attended"}
    {"event": "consult", "at", "call_id", "state": "ringing" | "talking" | "conference" |
     "ended", "to", "agent_id", "consult_agent", "reason"}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import transfer_messages as tm
from .acd import AcdError, InvalidStateError, TransferRefused
from .acd import transfer_events as tx
from .logs import log_event

if TYPE_CHECKING:
    from .acd_service import AcdService

log = logging.getLogger("ivr.acd_transfers")


class NoCallError(AcdError):
    """The agent has no call to transfer (the API's 409)."""


def flow_nodes(path: Path) -> frozenset[str] | None:
    """The flow's node names (``flow:`` targets are checked against them); None (not
    checked) when the flow cannot be read here: the workers' own check then applies."""
    from .flow import load_flow

    try:
        flow, _ = load_flow(path)
    except Exception as exc:  # noqa: BLE001 - a flow that cannot be read is the flow's problem
        log.warning("flow: targets are not checked: %s", exc)
        return None
    return frozenset(flow.nodes)


# ---- requests -------------------------------------------------------------------------


def _call_of(service: AcdService, agent_id: str) -> str:
    """The call ``agent_id`` has (connected, or consulting from)."""
    agent = service.acd.agents.get(agent_id)
    if agent is None:
        raise AcdError(f"no agent {agent_id!r} in the ACD")
    for entry in service.acd.entries.values():
        if entry.agent_id == agent_id and entry.state.value == "connected":
            return str(entry.call_id)
    raise NoCallError(f"agent {agent_id} has no call")


def request(service: AcdService, agent_id: str, what: str, to: str = "") -> str:
    """Carry out an agent's ``what`` (transfer, consult, complete, cancel, conference)
    on their call; the call's id. Raises NoCallError, TransferRefused (the target),
    InvalidStateError or AcdError (nothing changed)."""
    call_id = _call_of(service, agent_id)
    event: Any
    if what == "transfer":
        event = tx.TransferRequested(call_id, to, agent_id)
    elif what == "consult":
        event = tx.ConsultRequested(call_id, to, agent_id)
    elif what == "complete":
        event = tx.ConsultCompleted(call_id, agent_id)
    elif what == "cancel":
        event = tx.ConsultCancelled(call_id, agent_id)
    elif what == "conference":
        event = tx.ConferenceRequested(call_id, agent_id)
    else:
        raise ValueError(f"unknown transfer request {what!r}")
    service._handle(event)
    log_event(f"acd.{what}", call_id=call_id, agent_id=agent_id, to=to)
    return call_id


def on_message(service: AcdService, msg: tm.TransferAsked | tm.AgentLeft) -> None:
    """A worker's transfer message (a phone's REFER, a leg that ended)."""
    if isinstance(msg, tm.AgentLeft):
        service._handle(tx.AgentLeft(msg.call_id, msg.agent_id))
        return
    consult = service.acd.consults.get(msg.call_id)
    try:
        if msg.attended and consult is not None and consult.agent_id == msg.agent_id:
            service._handle(tx.ConsultCompleted(msg.call_id, msg.agent_id))
        else:
            service._handle(tx.TransferRequested(msg.call_id, msg.to, msg.agent_id))
    except (TransferRefused, InvalidStateError, AcdError) as exc:
        # the phone's transfer is refused: the agent keeps the caller
        log_event("acd.transfer_refused", call_id=msg.call_id, agent_id=msg.agent_id,
                  to=msg.to, why=str(exc))
        service._agent_event(msg.agent_id, {"event": "transfer_refused",
                                            "at": service._clock(), "call_id": msg.call_id,
                                            "to": msg.to, "reason": str(exc)})


# ---- the core's actions -----------------------------------------------------------------


def carry_out(service: AcdService, action: Any) -> None:
    now = service._clock()
    send = service._send
    info = service.calls.get(action.call_id)
    if isinstance(action, tx.ReleaseAgent):
        send(action.call_id, tm.Release(action.call_id, action.agent_id, action.reason))
    elif isinstance(action, tx.DialOut):
        send(action.call_id, tm.DialOut(action.call_id, action.number,
                                        service._agent_uri(action.number)))
        service.calls.pop(action.call_id, None)
    elif isinstance(action, tx.CallTransferred):
        service._agent_event(action.by, {"event": "transferred", "at": now,
                                         "call_id": action.call_id, "to": action.to,
                                         "by": action.by, "kind": action.kind})
    elif isinstance(action, tx.ConsultStarted):
        send(action.call_id, tm.ConsultHold(action.call_id, action.agent_id,
                                            action.offer_id, action.consult_agent))
        _consult_event(service, action.call_id, "ringing", action.agent_id,
                       action.consult_agent, to=action.to)
    elif isinstance(action, tx.ConsultConnected):
        send(action.call_id, tm.ConsultConnect(action.call_id, action.agent_id,
                                               action.consult_agent))
        _consult_event(service, action.call_id, "talking", action.agent_id,
                       action.consult_agent)
    elif isinstance(action, tx.ConsultEnded):
        send(action.call_id, tm.ConsultEnd(action.call_id, action.agent_id,
                                           action.consult_agent, action.reason))
        _consult_event(service, action.call_id, "ended", action.agent_id,
                       action.consult_agent, reason=action.reason)
    elif isinstance(action, tx.ConferenceStarted):
        send(action.call_id, tm.Conference(action.call_id, action.agents))
        _consult_event(service, action.call_id, "conference", *action.agents)
    elif isinstance(action, tx.BridgeAgent):
        send(action.call_id, tm.BridgeAgent(action.call_id, action.agent_id))
    elif isinstance(action, tx.SegmentStarted) and info is not None:
        # a consult completed: the consulted agent has the caller now (a ring answered
        # was told by CallConnected already; a conference's second agent by "consult")
        entry = service.acd.entries.get(action.call_id)
        if (info.agent_id == action.agent_id or entry is None
                or entry.agent_id != action.agent_id):
            return
        info.agent_id, info.connected_at = action.agent_id, now
        info.offer_ids.clear()
        service.last_call[action.agent_id] = info
        service._tell_agent(info, "connected", agent_id=action.agent_id,
                            call=service.call_view(info, "connected"))


def _consult_event(service: AcdService, call_id: str, state: str, agent_id: str,
                   consult_agent: str, to: str = "", reason: str = "") -> None:
    event = {"event": "consult", "at": service._clock(), "call_id": call_id,
             "state": state, "to": to, "agent_id": agent_id, "consult_agent": consult_agent,
             "reason": reason}
    for who in (agent_id, consult_agent):
        service._agent_event(who, event)


TRANSFER_ACTIONS = (tx.ReleaseAgent, tx.DialOut, tx.CallTransferred, tx.ConsultStarted,
                    tx.ConsultConnected, tx.ConsultEnded, tx.ConferenceStarted,
                    tx.BridgeAgent, tx.SegmentStarted)
