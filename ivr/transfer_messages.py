"""Messages between workers and the controller for transfers, consults and conferences
(the same registry and wire form as ``ivr/messages.py``; importing this module registers
them, which ``ivr/acd_service.py`` and ``ivr/queue_call.py`` both do).

Worker -> controller: ``TransferAsked`` (the agent's phone sent REFER), ``AgentLeft``.
Controller -> worker: ``Release``, ``DialOut``, ``ConsultHold``, ``ConsultConnect``,
``ConsultEnd``, ``BridgeAgent``, ``Conference``. docs/protocol.md says when each is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Message, message

# ---- worker -> controller ------------------------------------------------------------


@message("acd.transfer_asked")
@dataclass(frozen=True)
class TransferAsked(Message):
    """The agent's phone sent REFER on its leg (never passed to the caller). ``to``: the
    target as the ACD takes it (``agent:1002``, ``queue:billing``, ``tel:...``), mapped
    from the Refer-To URI; ``attended``: REFER with Replaces (the phone consulted)."""

    agent_id: str
    to: str
    attended: bool = False


@message("acd.agent_left")
@dataclass(frozen=True)
class AgentLeft(Message):
    """The leg of the named agent ended (the call's agent or the consulted one)."""

    agent_id: str


# ---- controller -> worker ------------------------------------------------------------


@message("acd.release")
@dataclass(frozen=True)
class Release(Message):
    """Hang up (BYE) this agent's leg; the caller stays, with music until bridged again.
    ``reason``: transferred, consult-cancelled, consult-ended, caller-gone."""

    agent_id: str
    reason: str


@message("acd.dial_out")
@dataclass(frozen=True)
class DialOut(Message):
    """Blind transfer to an outside number the dial plan allows: dial it through the
    front and bridge the caller to it; the call has left the ACD."""

    number: str
    uri: str = ""  # where to send the INVITE (through the front); empty: sip:NUMBER


@message("acd.consult_hold")
@dataclass(frozen=True)
class ConsultHold(Message):
    """Hold the caller (music), keep ``agent_id``'s leg up; ``offer_id`` (an ``Offer``
    that follows) rings the consulted agent and is not bridged to the caller."""

    agent_id: str
    offer_id: str
    consult_agent: str


@message("acd.consult_connect")
@dataclass(frozen=True)
class ConsultConnect(Message):
    """Bridge the two agents; the caller still hears music."""

    agent_id: str
    consult_agent: str


@message("acd.consult_end")
@dataclass(frozen=True)
class ConsultEnd(Message):
    """The consult is over: the caller is bridged with ``agent_id`` again."""

    agent_id: str
    consult_agent: str
    reason: str


@message("acd.bridge_agent")
@dataclass(frozen=True)
class BridgeAgent(Message):
    """The consult completed: bridge the caller with this agent's leg (already up)."""

    agent_id: str


@message("acd.conference")
@dataclass(frozen=True)
class Conference(Message):
    """Caller and these agents all hear each other."""

    agents: tuple[str, ...]


#: What the controller sends the worker about transfers (``ivr/transfer_call.py``).
TRANSFER_TO_WORKER = (Release, DialOut, ConsultHold, ConsultConnect, ConsultEnd, BridgeAgent,
                      Conference)
