"""The agent session: a pure core (no I/O, no clock: ``now`` is passed in) between the
agent's commands, the server's events and the phone's SIP events. Every method returns the
actions (``softphone/model.py``) the I/O layer carries out, in order.

Three state machines, kept apart:

The connection (``Link``)::

    SIGNED_OUT ──sign_in──▶ CONNECTING ──online(view)──▶ ONLINE
        ▲  ▲                  │   ▲                        │
        │  └─ wrong password ─┘   └──── reconnect_due ──┐  │ connection lost
        │                          (back-off 0.5 s ×2,  │  ▼
        └──────── sign_out ─────── at most 30 s) ───── OFFLINE

The agent's ACD status (``AcdStatus``; the server decides, the session mirrors it and says
what the agent asked for)::

    LOGGED_OUT ──ready──▶ READY ◀──────────▶ NOT_READY(reason)
                            │ offered            ▲
                            ▼                    │
                         RESERVED ──answer──▶ ON_CALL ──ended──▶ WRAP_UP ──code/timer──▶
                                                                        READY or the
                                                                        next state

The call on the phone (``CallState``)::

    IDLE ──incoming (from the server signed in to)──▶ RINGING ──answered──▶ TALKING
     ▲                                                  │                  │  ▲
     └────────────── ended (either side) ───────────────┴──────────────── hold/resume
                                                                         HELD

The next state: "not ready: lunch" chosen while RESERVED, ON_CALL or WRAP_UP does not cut
the call short. It is sent while ON_CALL (the server keeps it for the end of the wrap-up),
or, chosen later, when the wrap-up code goes; if the server's timer ends the wrap-up first,
it is sent then.

Wrap-ups are never lost: each goes into the outbox and leaves it only when the server has
it (or refused it for good, which the agent is told); offline, they wait; on reconnect,
they go in the order they were typed. A state asked for offline is sent on reconnect too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .figures import Figures, ShiftFigures, from_server
from .model import (
    AcdStatus,
    Action,
    AnswerCall,
    CallState,
    Connect,
    HangUpCall,
    InvalidStateError,
    Link,
    Notice,
    Offer,
    ReconnectIn,
    RejectCall,
    Ring,
    SendDtmf,
    SendState,
    SendWrapUp,
    SetHold,
    SetMute,
    SignOut,
    Transfer,
    WrapUp,
)

log = logging.getLogger("softphone.session")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
DTMF_DIGITS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
TRANSFER_TARGET = re.compile(r"^(agent|queue|flow):[\w.-]{1,64}$|^tel:\+?[0-9*#]{1,32}$")
BUSY_STATES = (AcdStatus.RESERVED, AcdStatus.ON_CALL, AcdStatus.WRAP_UP)


def _status(name: str) -> AcdStatus:
    try:
        return AcdStatus(name.replace("-", "_"))
    except ValueError:
        raise InvalidStateError(f"unknown agent state {name!r}: "
                                f"{', '.join(s.value for s in AcdStatus)}") from None


def offer_from_call(call: dict[str, Any]) -> Offer:
    """The screen pop from the server's call view (``ivr/desk.py``)."""
    data = {str(k): str(v) for k, v in (call.get("data") or {}).items()}
    return Offer(call_id=str(call.get("call_id", "")), queue=str(call.get("queue", "")),
                 caller=str(call.get("caller", "")),
                 caller_name=str(call.get("caller_name", "")),
                 wait_s=float(call.get("wait_s") or 0.0), data=data,
                 ivr_path=tuple(str(p) for p in call.get("ivr_path") or ()) or tuple(
                     p for p in data.get("ivr_path", "").split(" > ") if p),
                 language=str(call.get("language") or data.get("language", "")))


@dataclass
class AgentSession:
    agent_id: str
    auto_answer_s: float | None = None  # answer by itself after this long ringing
    backoff_max_s: float = BACKOFF_MAX_S  # the longest wait between reconnects
    link: Link = Link.SIGNED_OUT
    status: AcdStatus = AcdStatus.LOGGED_OUT
    reason: str = ""
    status_since: float | None = None
    call: CallState = CallState.IDLE
    muted: bool = False
    ringing_since: float | None = None
    offer: Offer | None = None  # the call being offered or talked to, or the one in ACW
    acw_call_id: str | None = None  # the call a wrap-up code applies to
    coded_call_ids: set[str] = field(default_factory=set)
    next_state: tuple[AcdStatus, str] | None = None
    next_sent: bool = False
    wanted: tuple[AcdStatus, str] | None = None  # asked for while offline
    outbox: list[WrapUp] = field(default_factory=list)
    in_flight: set[int] = field(default_factory=set)
    refused: list[tuple[WrapUp, str]] = field(default_factory=list)
    reconnects: int = 0  # attempts since the last time online
    figures: ShiftFigures = field(default_factory=ShiftFigures)  # counted here
    server_figures: tuple[dict[str, Any], float] | None = None  # the server's, fetched at
    _next_wrapup_id: int = 1

    # ---- the connection -------------------------------------------------------------

    def sign_in(self, now: float) -> list[Action]:
        if self.link is not Link.SIGNED_OUT:
            raise InvalidStateError(f"already signed in ({self.link.value})")
        self._set_link(Link.CONNECTING)
        return [Connect()]

    def online(self, agent: dict[str, Any], now: float) -> list[Action]:
        """Signed in and the event stream said hello with ``agent`` (the agent view):
        take the server's state, then send what waited."""
        if self.link is not Link.CONNECTING:
            return []
        self._set_link(Link.ONLINE)
        self.reconnects = 0
        self._take_view(agent, now)
        out: list[Action] = [SendWrapUp(w) for w in self._unsent()]
        self.in_flight |= {w.wrapup_id for w in self.outbox}
        if self.wanted is not None:
            state, reason = self.wanted
            self.wanted = None
            out += self._ask(state, reason)
        if self.status is AcdStatus.ON_CALL:
            out += self._send_next_if_waiting()
        return out

    def connection_lost(self, now: float, why: str) -> list[Action]:
        if self.link in (Link.SIGNED_OUT, Link.OFFLINE):
            return []
        self._set_link(Link.OFFLINE)
        self.in_flight.clear()  # sent or not, they go again: the server refuses a double
        delay_s = min(self.backoff_max_s, BACKOFF_FIRST_S * 2 ** min(self.reconnects, 16))
        self.reconnects += 1
        self.next_sent = False  # a restarted server has lost what it kept: send it again
        return [Notice(f"lost the server ({why}); trying again in {delay_s:g} s"),
                ReconnectIn(delay_s)]

    def state_not_sent(self, state: AcdStatus, reason: str, now: float, why: str
                       ) -> list[Action]:
        """A state change did not reach the server: kept, and the connection is lost."""
        self.wanted = (state, reason)
        return self.connection_lost(now, why)

    def sign_in_refused(self, now: float, why: str) -> list[Action]:
        """The server said no to the credentials: no point in trying again."""
        self._set_link(Link.SIGNED_OUT)
        return [Notice(f"sign-in refused: {why}", "error")]

    def reconnect_due(self, now: float) -> list[Action]:
        if self.link is not Link.OFFLINE:
            return []
        self._set_link(Link.CONNECTING)
        return [Connect()]

    def sign_out(self, now: float) -> list[Action]:
        if self.call is not CallState.IDLE or self.status in (AcdStatus.RESERVED,
                                                              AcdStatus.ON_CALL):
            return self.choose_next_state("logged_out", now=now)
        if self.outbox:
            raise InvalidStateError(f"{len(self.outbox)} wrap-up(s) not yet with the server: "
                                    "wait for the connection to come back")
        out: list[Action] = [SignOut()] if self.link is Link.ONLINE else []
        self._set_link(Link.SIGNED_OUT)
        self._set_status(AcdStatus.LOGGED_OUT, "", now)
        return out

    # ---- the agent's state ----------------------------------------------------------

    def go_ready(self, now: float) -> list[Action]:
        return self.set_state("ready", now=now)

    def go_not_ready(self, reason: str, now: float) -> list[Action]:
        return self.set_state("not_ready", reason, now)

    def set_state(self, state: str, reason: str = "", now: float = 0.0) -> list[Action]:
        """Ready / not ready (reason) / logged out. During a call: the next state."""
        want = self._wantable(state, reason)
        if self.status in (AcdStatus.RESERVED, AcdStatus.ON_CALL):
            return self.choose_next_state(state, reason, now)
        if self.status is AcdStatus.WRAP_UP:
            self.next_state, self.next_sent = None, False  # this ends the wrap-up now
        return self._ask(*want)

    def choose_next_state(self, state: str, reason: str = "", now: float = 0.0
                          ) -> list[Action]:
        """The state to take when this call (and its wrap-up) is over."""
        want = self._wantable(state, reason)
        if self.status not in BUSY_STATES and self.call is CallState.IDLE:
            return self._ask(*want)
        self.next_state, self.next_sent = want, False
        if self.status is AcdStatus.ON_CALL:
            return self._send_next_if_waiting()
        return []

    def _wantable(self, state: str, reason: str) -> tuple[AcdStatus, str]:
        want = _status(state)
        if want not in (AcdStatus.READY, AcdStatus.NOT_READY, AcdStatus.LOGGED_OUT):
            raise InvalidStateError(f"an agent cannot ask to be {want.value}")
        return want, reason if want is AcdStatus.NOT_READY else ""

    def _ask(self, state: AcdStatus, reason: str) -> list[Action]:
        if self.link is Link.ONLINE:
            return [SendState(state, reason)]
        if self.link is Link.SIGNED_OUT:
            raise InvalidStateError("sign in first")
        self.wanted = (state, reason)
        return [Notice(f"offline: {state.value} will be sent when the server is back", "info")]

    def _send_next_if_waiting(self) -> list[Action]:
        if self.next_state is None or self.next_sent or self.link is not Link.ONLINE:
            return []
        self.next_sent = True
        return [SendState(*self.next_state)]

    # ---- after-call work ------------------------------------------------------------

    def submit_wrapup(self, code: str, note: str, now: float) -> list[Action]:
        if not code.strip():
            raise InvalidStateError("pick a reason code first")
        call_id = self.acw_call_id
        if call_id is None:
            raise InvalidStateError("no call to wrap up")
        if call_id in self.coded_call_ids:
            raise InvalidStateError(f"call {call_id} already has its code")
        wrapup = WrapUp(self._next_wrapup_id, call_id, code.strip(), note, now)
        self._next_wrapup_id += 1
        self.coded_call_ids.add(call_id)
        self.outbox.append(wrapup)
        out: list[Action] = []
        if self.link is Link.ONLINE:
            self.in_flight.add(wrapup.wrapup_id)
            out.append(SendWrapUp(wrapup))
        else:
            out.append(Notice("offline: the wrap-up is kept and sent when the server is back",
                              "info"))
        if self.next_state is not None and not self.next_sent:
            self.next_sent = True
            out += self._ask(*self.next_state)
        return out

    def restore_outbox(self, wrapups: list[WrapUp], now: float) -> list[Action]:
        """The wrap-ups a previous run left unsent (``outbox.py``): they go first, once
        online. Only before signing in."""
        if self.link is not Link.SIGNED_OUT or self.outbox:
            raise InvalidStateError("the outbox is restored only at start")
        for w in wrapups:
            self.outbox.append(WrapUp(self._next_wrapup_id, w.call_id, w.code, w.note,
                                      w.typed_at))
            self._next_wrapup_id += 1
            self.coded_call_ids.add(w.call_id)
        if not wrapups:
            return []
        return [Notice(f"{len(wrapups)} wrap-up(s) from the last run wait to be sent",
                       "info")]

    def wrapup_delivered(self, wrapup_id: int, now: float) -> list[Action]:
        self._drop(wrapup_id)
        return []

    def wrapup_refused(self, wrapup_id: int, message: str, now: float) -> list[Action]:
        """The server refused it for good (an unknown code): the agent must see it."""
        if "already has its code" in message:  # a resend of one the server has
            self._drop(wrapup_id)
            return []
        gone = [w for w in self.outbox if w.wrapup_id == wrapup_id]
        self._drop(wrapup_id)
        for w in gone:
            self.refused.append((w, message))
            self.coded_call_ids.discard(w.call_id)
        return [Notice(f"wrap-up refused: {message}", "error")]

    def _drop(self, wrapup_id: int) -> None:
        self.outbox = [w for w in self.outbox if w.wrapup_id != wrapup_id]
        self.in_flight.discard(wrapup_id)

    def _unsent(self) -> list[WrapUp]:
        return [w for w in self.outbox if w.wrapup_id not in self.in_flight]

    # ---- the server's events --------------------------------------------------------

    def server_event(self, event: dict[str, Any], now: float) -> list[Action]:
        kind = event.get("event")
        at = float(event.get("at") or now)
        if kind == "hello":
            self._take_view(event.get("agent") or {}, at)
        elif kind == "state":
            return self._on_state(_status(str(event["state"])), str(event.get("reason", "")),
                                  at)
        elif kind in ("offered", "connected"):
            self.offer = offer_from_call(event.get("call") or {})
            if kind == "connected":
                self.acw_call_id = self.offer.call_id
        elif kind == "ended":
            self.acw_call_id = str(event.get("call_id") or self.acw_call_id or "") or None
        return []

    def _on_state(self, new: AcdStatus, reason: str, at: float) -> list[Action]:
        old = self.status
        self._set_status(new, reason, at)
        if new is AcdStatus.ON_CALL:
            return self._send_next_if_waiting()
        if new in BUSY_STATES or self.next_state is None:
            return []
        # the call and its wrap-up are over: the next state, if the server lacks it
        want, self.next_state = self.next_state, None
        sent, self.next_sent = self.next_sent, False
        if old in BUSY_STATES and (new, reason) != want and not sent:
            return self._ask(*want)
        return []

    def _take_view(self, agent: dict[str, Any], now: float) -> None:
        if "state" in agent:
            self._set_status(_status(str(agent["state"])), str(agent.get("reason", "")),
                             float(agent.get("since") or now))
        call = agent.get("call")
        if isinstance(call, dict):
            self.offer = offer_from_call(call)
            if call.get("state") in ("connected", "held", "wrap_up"):
                self.acw_call_id = self.offer.call_id

    # ---- the agent's figures ---------------------------------------------------------

    def take_server_figures(self, got: dict[str, Any], now: float) -> list[Action]:
        """The server's figures for today arrived (asked for at sign-in and at each call's
        end)."""
        self.server_figures = (dict(got), now)
        return []

    def shift_figures(self, now: float) -> Figures:
        """What the figures panel shows: the server's, else those counted here."""
        local = self.figures.figures(now)
        if self.server_figures is None:
            return local
        got, at = self.server_figures
        return from_server(got, at, now, self.status, local)

    # ---- the phone ------------------------------------------------------------------

    def incoming_call(self, from_server: bool, now: float, call_info: str = ""
                      ) -> list[Action]:
        """The SIP UA has an INVITE; ``from_server``: it came from the server signed in to;
        ``call_info``: its Call-Info header, which names the server's call id."""
        if not from_server:
            return [RejectCall(403, "not from the server this phone is signed in to")]
        if self.link is Link.SIGNED_OUT:
            return [RejectCall(480, "not signed in")]
        if self.call is not CallState.IDLE:
            return [RejectCall(486, "already on a call")]
        self._set_call(CallState.RINGING)
        self.ringing_since = now
        if self.offer is not None and self.offer.call_id not in call_info:
            self.offer = None  # the last call's pop; this one's comes with "offered"
        return [Ring(True)]

    def set_auto_answer(self, seconds: float | None, now: float) -> list[Action]:
        """Answer by itself after ``seconds`` of ringing (None or 0: the agent answers)."""
        if seconds is not None and not 0 <= seconds <= 60:
            raise InvalidStateError(f"auto-answer after {seconds:g} s: give 0 to 60 s")
        self.auto_answer_s = seconds or None
        return []

    def tick(self, now: float) -> list[Action]:
        """Timers: auto-answer."""
        if (self.call is CallState.RINGING and self.auto_answer_s is not None
                and self.ringing_since is not None
                and now - self.ringing_since >= self.auto_answer_s):
            self.ringing_since = None
            return [AnswerCall()]
        return []

    def answer(self, now: float) -> list[Action]:
        self._need(CallState.RINGING, what="answer")
        self.ringing_since = None
        return [AnswerCall()]

    def call_answered(self, now: float) -> list[Action]:
        if self.call is not CallState.RINGING:
            return []
        self._set_call(CallState.TALKING)
        return [Ring(False)]

    def hang_up(self, now: float) -> list[Action]:
        if self.call is CallState.RINGING:
            return [RejectCall(486, "declined by the agent")]
        self._need(CallState.TALKING, CallState.HELD, what="hang up")
        return [HangUpCall()]

    def call_ended(self, now: float) -> list[Action]:
        was = self.call
        self._set_call(CallState.IDLE)
        self.muted, self.ringing_since = False, None
        return [Ring(False)] if was is CallState.RINGING else []

    def set_mute(self, muted: bool, now: float) -> list[Action]:
        self._need(CallState.TALKING, CallState.HELD, what="mute")
        self.muted = muted
        return [SetMute(muted)]

    def hold(self, now: float) -> list[Action]:
        self._need(CallState.TALKING, what="hold")
        return [SetHold(True)]

    def resume(self, now: float) -> list[Action]:
        self._need(CallState.HELD, what="resume")
        return [SetHold(False)]

    def call_held(self, held: bool, now: float) -> list[Action]:
        if self.call in (CallState.TALKING, CallState.HELD):
            self._set_call(CallState.HELD if held else CallState.TALKING)
        return []

    def send_dtmf(self, digits: str, now: float) -> list[Action]:
        self._need(CallState.TALKING, what="send digits")
        if not DTMF_DIGITS.match(digits):
            raise InvalidStateError(f"not DTMF digits: {digits!r} (0-9, *, #, A-D)")
        return [SendDtmf(digits.upper())]

    def transfer(self, to: str, now: float) -> list[Action]:
        self._need(CallState.TALKING, CallState.HELD, what="transfer")
        if not TRANSFER_TARGET.match(to):
            raise InvalidStateError(f"transfer to {to!r}: give agent:ID, queue:NAME, "
                                    "flow:NAME or tel:NUMBER")
        if self.link is not Link.ONLINE:
            raise InvalidStateError("offline: a transfer needs the server")
        return [Transfer(to)]

    def _need(self, *states: CallState, what: str) -> None:
        if self.call not in states:
            raise InvalidStateError(f"cannot {what} while the phone is {self.call.value}")

    # ---- one place per state machine that changes it --------------------------------

    def _set_link(self, new: Link) -> None:
        if new is not self.link:
            log.info("agent %s: link %s -> %s", self.agent_id, self.link.value, new.value)
            self.link = new

    def _set_status(self, new: AcdStatus, reason: str, at: float) -> None:
        if (new, reason) != (self.status, self.reason):
            log.info("agent %s: ACD %s -> %s %s", self.agent_id, self.status.value,
                     new.value, reason)
            self.status, self.reason, self.status_since = new, reason, at
            self.figures.status(new, at)

    def _set_call(self, new: CallState) -> None:
        if new is not self.call:
            log.info("agent %s: call %s -> %s", self.agent_id, self.call.value, new.value)
            self.call = new
