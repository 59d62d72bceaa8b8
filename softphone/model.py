"""The softphone's words: the agent's ACD status, the connection, the call's SIP state, and
the frozen actions the session core returns for the I/O layer to carry out.

The ACD status is the server's (``ivr/acd/model.py``: what the queues think of the agent);
the call state is the phone's own (what the SIP user agent is doing). They are kept apart:
the ACD says ``on_call`` a moment before the phone has the media up, and a phone on hold is
still ``on_call`` for the ACD.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AcdStatus(enum.Enum):
    """The agent's status in the ACD, as the server pushes it."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"  # a queued call is ringing this agent's phone
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after-call work


class Link(enum.Enum):
    """The session's connection to the server (API + event stream)."""

    SIGNED_OUT = "signed_out"  # no credentials: nothing to reconnect
    CONNECTING = "connecting"
    ONLINE = "online"  # signed in, the event stream says hello
    OFFLINE = "offline"  # lost; a reconnect is scheduled


class CallState(enum.Enum):
    """The phone's own call (SIP), whatever the ACD thinks."""

    IDLE = "idle"
    RINGING = "ringing"
    TALKING = "talking"
    HELD = "held"


# the states an agent may ask for (the server's names)
WANTABLE = frozenset({AcdStatus.READY, AcdStatus.NOT_READY, AcdStatus.LOGGED_OUT})


class InvalidStateError(Exception):
    """A command the session cannot take now; the message says why, for the agent."""


@dataclass(frozen=True)
class WrapUp:
    """A disposition typed by the agent: kept until the server has it (``wrapup_id`` is the
    session's own, so results can be matched; ``call_id`` the call it codes)."""

    wrapup_id: int
    call_id: str
    code: str
    note: str
    typed_at: float


@dataclass(frozen=True)
class Offer:
    """The screen pop of a queued call ringing this agent (the server's call view)."""

    call_id: str
    queue: str
    caller: str
    caller_name: str
    wait_s: float
    data: dict[str, str]
    ivr_path: tuple[str, ...] = ()
    language: str = ""


# ---- actions: what the I/O layer must do --------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Sign in (again) and open the event stream."""


@dataclass(frozen=True)
class ReconnectIn:
    """Call ``session.reconnect_due(now)`` after ``delay_s``."""

    delay_s: float


@dataclass(frozen=True)
class SignOut:
    pass


@dataclass(frozen=True)
class SendState:
    state: AcdStatus
    reason: str = ""


@dataclass(frozen=True)
class SendWrapUp:
    wrapup: WrapUp


@dataclass(frozen=True)
class Transfer:
    to: str  # agent:ID, queue:NAME, flow:NAME, tel:NUMBER


@dataclass(frozen=True)
class AnswerCall:
    pass


@dataclass(frozen=True)
class HangUpCall:
    pass


@dataclass(frozen=True)
class RejectCall:
    sip_status: int
    why: str


@dataclass(frozen=True)
class SetMute:
    muted: bool


@dataclass(frozen=True)
class SetHold:
    held: bool


@dataclass(frozen=True)
class SendDtmf:
    digits: str


@dataclass(frozen=True)
class Ring:
    """Start (True) or stop (False) the ring tone on the ring device."""

    on: bool


@dataclass(frozen=True)
class Notice:
    """Something the agent must see (a warning unless ``level`` says otherwise)."""

    text: str
    level: str = "warning"


Action = (Connect | ReconnectIn | SignOut | SendState | SendWrapUp | Transfer | AnswerCall
          | HangUpCall | RejectCall | SetMute | SetHold | SendDtmf | Ring | Notice)
