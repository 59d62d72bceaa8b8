"""Transfer, consult and segment events and actions (frozen dataclasses, as ``events.py``).

A *segment* is one agent's part of a call: it starts when that agent is connected to the
caller and ends when they leave (hang up, transfer, the caller hangs up). Each segment has
exactly one agent and exactly one end; the agent's wrap-up starts at their segment's end.
Transfer targets are written ``agent:1002``, ``queue:billing``, ``flow:survey`` or
``tel:+4930123456`` (see ``transfer.parse_target``).
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- events (into the ACD) -------------------------------------------------------------


@dataclass(frozen=True)
class TransferRequested:
    """Blind transfer: the call's agent (``by``; empty: whoever has the call) sends the
    caller to ``to`` and leaves at once."""

    call_id: str
    to: str
    by: str = ""


@dataclass(frozen=True)
class ConsultRequested:
    """Attended transfer, first step: the caller is held (music) and ``to`` (an agent or
    a queue's ready agent) is rung for the call's agent to talk to."""

    call_id: str
    to: str
    by: str = ""


@dataclass(frozen=True)
class ConsultCompleted:
    """The first agent hands the caller to the consulted agent and leaves."""

    call_id: str
    by: str = ""


@dataclass(frozen=True)
class ConsultCancelled:
    """The first agent gives up the consult and takes the caller back."""

    call_id: str
    by: str = ""


@dataclass(frozen=True)
class ConferenceRequested:
    """Caller, first agent and consulted agent all in one conference."""

    call_id: str
    by: str = ""


@dataclass(frozen=True)
class AgentLeft:
    """The leg of the named agent ended (the call's agent, or the consulted agent)."""

    call_id: str
    agent_id: str


TransferEvent = (TransferRequested | ConsultRequested | ConsultCompleted | ConsultCancelled
                 | ConferenceRequested | AgentLeft)

# ---- actions (out of the ACD) ----------------------------------------------------------


@dataclass(frozen=True)
class SegmentStarted:
    call_id: str
    agent_id: str
    queue: str
    at: float


@dataclass(frozen=True)
class SegmentEnded:
    """``end``: completed_caller, completed_agent, transferred, lost."""

    call_id: str
    agent_id: str
    queue: str
    started_at: float
    ended_at: float
    end: str

    @property
    def talk_s(self) -> float:
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class ReleaseAgent:
    """Hang up this agent's leg (BYE); the caller's leg stays (music until bridged)."""

    call_id: str
    agent_id: str
    reason: str  # transferred, consult-cancelled, consult-ended, caller-gone


@dataclass(frozen=True)
class CallTransferred:
    """Tell people (the agents' WebSocket): ``by`` sent the call to ``to``."""

    call_id: str
    by: str
    to: str
    kind: str  # blind, attended


@dataclass(frozen=True)
class DialOut:
    """Blind transfer to an outside number the dial plan allows: the worker dials it and
    bridges the caller to it; the call has left the ACD."""

    call_id: str
    number: str
    by: str


@dataclass(frozen=True)
class ConsultStarted:
    """Hold the caller (music) and keep ``agent_id``'s leg up; ``offer_id`` rings the
    consulted agent (an ``OfferAgent`` with the same id follows)."""

    call_id: str
    agent_id: str
    to: str
    offer_id: str
    consult_agent: str


@dataclass(frozen=True)
class ConsultConnected:
    """The consulted agent answered: bridge the two agents (the caller still on hold)."""

    call_id: str
    agent_id: str
    consult_agent: str


@dataclass(frozen=True)
class ConsultEnded:
    """The consult is over without a transfer (cancelled, not answered, the consulted
    agent hung up): the caller is back with ``agent_id``, never dropped."""

    call_id: str
    agent_id: str
    consult_agent: str
    reason: str  # cancelled, no-answer, rejected, consult-gone


@dataclass(frozen=True)
class BridgeAgent:
    """Connect the caller with this agent's leg (already up): the consult completed."""

    call_id: str
    agent_id: str


@dataclass(frozen=True)
class ConferenceStarted:
    call_id: str
    agents: tuple[str, ...]


TransferAction = (SegmentStarted | SegmentEnded | ReleaseAgent | CallTransferred | DialOut
                  | ConsultStarted | ConsultConnected | ConsultEnded | BridgeAgent
                  | ConferenceStarted)
