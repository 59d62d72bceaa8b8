"""The ACD part of one call's session: the caller in a queue, the agent legs, the bridge.

The session (``ivr/session.py``) owns one inbox per call, fed by the caller's leg, by every
agent leg this module places, and by the controller's messages (``ivr/messages.py``, routed
by call id by the worker). It hands this module what concerns the ACD; this module tells the
controller what happened (``Join``, ``OfferRinging`` ...), carries out what the controller
asks (``Offer``, ``Connect`` ...), and moves the flow's queue states (``FlowRun.on_queued``
...), whose actions (music on hold, announcements, the flow going on) the session applies.

One agent leg per offer (ring-all rings several for one call)::

    CALLING --LegRinging--> RINGING --LegAnswered--> ANSWERED --Connect--> BRIDGED <--> HELD
       |                       |                        |                     |
       +--LegFailed (OfferFailed)                       +---- CancelOffer, caller gone:
       +--CancelOffer: CANCELLED (CANCEL; its 487 is not reported)  BYE --> ENDED
    BRIDGED/HELD --agent LegHungUp--> ENDED (AgentGone; the flow goes on at after_agent)

Every step is also a ``call_event`` of the call (``queue.joined``, ``agent.offered``,
``agent.ringing``, ``agent.answered``, ``agent.failed``, ``agent.cancelled``,
``agent.connected``, ``agent.held``, ``agent.resumed``, ``agent.hangup``, ``recording``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from media import (
    CallLeg,
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHeld,
    LegHungUp,
    LegReferred,
    LegResumed,
    LegRinging,
    MediaError,
    MediaReady,
)

from . import callback_messages as cm
from . import messages as m
from . import supervision_messages as sm
from . import transfer_messages as tm
from .flow import FlowRun, RunState
from .flow.interpreter import Action, QueueCall, mask

log = logging.getLogger("ivr.queue_call")

# Variables the agent never needs: the call's own ids (sent as X-Call-Id) and the raw URI.
_NOT_FOR_AGENTS = frozenset({"call_id", "sip_call_id", "caller_uri"})
_HEADER_WORD = re.compile(r"[A-Za-z0-9]+")
NO_ANSWER_CODES = frozenset({408, 480, 487})


class ControllerLost:
    """Put in a call's inbox when the worker's link to the controller is gone."""


class AcdLink(Protocol):
    """What a call needs of the controller link (``ivr.link.ControllerLink``)."""

    lost: bool

    def send_message(self, msg: m.Message) -> None: ...


class Recording(Protocol):
    path: Path

    async def stop(self) -> float: ...


class AcdMedia(Protocol):
    """The phone's part (``ivr.agent_media.PhoneMedia``; tests give a fake)."""

    async def place_call(self, uri: str, headers: dict[str, str]) -> CallLeg: ...

    async def bridge(self, caller: CallLeg, agent: CallLeg) -> None: ...

    async def unbridge(self, caller: CallLeg, agent: CallLeg) -> None: ...

    async def connect(self, caller: CallLeg, a: CallLeg, b: CallLeg, level_ab: float,
                      level_ba: float) -> None: ...

    async def disconnect(self, caller: CallLeg, leg: CallLeg) -> None: ...

    async def start_recording(self, left: CallLeg, right: CallLeg, path: Path) -> Recording: ...


class OfferState(StrEnum):
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    HELD = "held"
    CANCELLED = "cancelled"  # CANCEL or BYE sent by us; waiting for the leg to end
    ENDED = "ended"


@dataclass(eq=False)
class AgentOffer:
    offer: m.Offer
    leg: CallLeg
    state: OfferState = OfferState.CALLING
    connect_pending: bool = False  # Connect came before the agent's audio was up

    def set_state(self, new: OfferState) -> None:
        log.debug("offer %s (agent %s): %s -> %s", self.offer.offer_id, self.offer.agent_id,
                  self.state.value, new.value)
        self.state = new

    @property
    def live(self) -> bool:
        return self.state not in (OfferState.CANCELLED, OfferState.ENDED)


def header_name(var: str) -> str:
    """``caller_name`` -> ``X-IVR-Caller-Name``."""
    return "X-IVR-" + "-".join(w.capitalize() for w in _HEADER_WORD.findall(var))


def agent_headers(call_id: str, offer: m.Offer, data: Mapping[str, str],
                  info_url: str) -> dict[str, str]:
    """The INVITE's headers for the agent: the queue, the wait, the IVR's variables, the
    call's id and where the agent client can look it up."""
    headers = {"X-Queue": offer.queue, "X-Wait-S": str(int(offer.wait_s)), "X-Call-Id": call_id}
    for var, value in data.items():
        name = header_name(var)
        if name != "X-IVR-":
            headers[name] = " ".join(value.split())  # one line, whatever the caller typed
    if info_url:
        headers["Call-Info"] = f"<{info_url}>;purpose=info"
    return headers


def failure_reason(status_code: int) -> str:
    """OfferFailed's reason for an agent leg's final answer."""
    return "no_answer" if status_code in NO_ANSWER_CODES or status_code == 0 else "rejected"


class AcdCall:
    """The ACD part of one call. ``apply`` runs the flow's actions in the session;
    ``note(kind, data)`` records a call event; ``forward(leg)`` feeds a new leg's events to the
    call's inbox; ``now`` is the session's monotonic clock, ``wall`` the wall clock."""

    def __init__(self, call_id: str, run: FlowRun, caller: CallLeg, link: AcdLink,
                 media: AcdMedia, *, apply: Callable[[list[Action]], Awaitable[None]],
                 note: Callable[[str, dict[str, Any]], None],
                 forward: Callable[[CallLeg], None], now: Callable[[], float],
                 wall: Callable[[], float], recordings_dir: Path, info_url: str = "",
                 fixed_vars: frozenset[str] = frozenset()) -> None:
        self.call_id = call_id
        self.run = run
        self.caller = caller
        self.link = link
        self.media = media
        self._apply = apply
        self._note = note
        self._forward = forward
        self._now = now
        self._wall = wall
        self.recordings_dir = recordings_dir
        self.info_url = info_url
        self.fixed_vars = fixed_vars  # the flow's starting vars: configuration, not the call's
        self.offers: dict[str, AgentOffer] = {}
        self.in_acd = False  # joined, and neither left nor sent on since
        self.queue = ""
        self.data: dict[str, str] = {}
        self.recording: tuple[Recording, m.Offer] | None = None
        self.segments = 0
        from .transfer_call import CallTransfers

        self.transfers = CallTransfers(self)  # transfer_call.py: consults, REFER, dial-out
        from .supervisor_leg import SupervisorLeg

        self.supervisor = SupervisorLeg(self)  # supervisor_leg.py: listen, whisper, barge

    # -- the flow reaches a queue node --------------------------------------------------

    def agent_data(self) -> dict[str, str]:
        """What the agent sees: the caller, their name, the language and what the flow
        collected; a sensitive collect's digits masked."""
        out: dict[str, str] = {}
        for var, value in self.run.vars.items():
            if var in _NOT_FOR_AGENTS or (var in self.fixed_vars and var != "language"):
                continue
            out[var] = mask(value) if var in self.run.sensitive else str(value)
        if self.run.path:  # the menu choices taken, for the agent's screen pop
            out.setdefault("ivr_path", " > ".join(self.run.path))
        return out

    async def join(self, action: QueueCall) -> None:
        if self.link.lost:
            await self._apply(self.run.on_queue_result(self._now(), False, "no ACD"))
            return
        self.in_acd = True
        self.queue = action.queue
        self.data = self.agent_data()
        caller = self.run.vars.get("caller", "")
        self.link.send_message(m.Join(self.call_id, action.queue, action.priority,
                                      action.skills, caller, self.data))
        self._note("queue.joined", {"queue": action.queue, "priority": action.priority,
                                    "skills": list(action.skills)})

    async def request_callback(self, number: str) -> None:
        """The caller confirmed a number for a callback (their place is kept)."""
        if not self.in_acd:
            await self._apply(self.run.on_callback_refused(self._now(), "not in the ACD"))
            return
        self.link.send_message(cm.CallbackRequest(self.call_id, number, self.data))

    async def left_with_key(self, key: str) -> None:
        """The caller pressed an exit key (the flow has gone on already)."""
        if self.in_acd:
            self.in_acd = False
            self.link.send_message(m.LeftWithKey(self.call_id, key))
        await self._drop_offers("caller-left")

    # -- the controller's messages ------------------------------------------------------

    async def on_message(self, msg: m.Message | ControllerLost) -> None:
        now = self._now()
        if isinstance(msg, ControllerLost):
            await self._controller_lost()
        elif isinstance(msg, m.Offer):
            await self._offer(msg)
        elif isinstance(msg, m.CancelOffer):
            await self._cancel(msg)
        elif isinstance(msg, m.Connect):
            await self._connect(msg)
        elif isinstance(msg, m.Queued):
            await self._apply(self.run.on_queued(now))
        elif isinstance(msg, m.Announce):
            await self._apply(self.run.on_announce(now, msg.position, msg.estimated_wait_s))
        elif isinstance(msg, m.Requeued):
            self._note("queue.requeued", {"queue": msg.queue, "position": msg.position})
            await self._apply(self.run.on_requeued(now))
        elif isinstance(msg, tm.TRANSFER_TO_WORKER):
            await self.transfers.on_message(msg)
        elif isinstance(msg, sm.TO_WORKER):
            await self.supervisor.on_message(msg)
        elif isinstance(msg, cm.CallbackTaken):
            self.in_acd = False  # its place is the callback's now; the caller will hang up
            await self._drop_offers("callback")
            self._note("callback.taken", {"queue": msg.queue,
                                                "callback_id": msg.callback_id,
                                                "position": msg.position,
                                                "estimated_wait_s": msg.estimated_wait_s})
            await self._apply(self.run.on_callback_taken(now, msg.estimated_wait_s))
        elif isinstance(msg, cm.CallbackRefused):
            await self._apply(self.run.on_callback_refused(now, msg.reason))
        elif isinstance(msg, m.Exit):
            if self._bridged() is not None:  # talking already: the agent part decides
                log.warning("call %s: Exit while bridged, ignored", self.call_id)
                return
            self.in_acd = False
            await self._drop_offers("exit")
            await self._apply(self.run.on_queue_exit(now, msg.target, msg.reason))
        else:
            log.warning("call %s: unexpected %s from the controller", self.call_id, msg.TYPE)

    async def _controller_lost(self) -> None:
        """No controller, no ACD: a waiting caller goes on at on_unavailable; a caller who
        talks to an agent goes on talking."""
        if not self.in_acd:
            return
        self.in_acd = False
        if self._bridged() is not None:
            return
        await self._drop_offers("controller-lost")
        await self._apply(self.run.on_queue_exit(self._now(), "", "no ACD"))

    async def _offer(self, offer: m.Offer) -> None:
        if not self.in_acd or self.caller.ended is not None:
            self.link.send_message(m.OfferFailed(self.call_id, offer.offer_id, "error"))
            return
        headers = agent_headers(self.call_id, offer, self.data, self.info_url)
        self._note("agent.offered", {"offer_id": offer.offer_id, "agent_id": offer.agent_id,
                                     "uri": offer.uri, "queue": offer.queue})
        try:
            leg = await self.media.place_call(offer.uri, headers)
        except (MediaError, ValueError) as exc:
            log.warning("call %s: cannot call agent %s at %s: %s", self.call_id,
                        offer.agent_id, offer.uri, exc)
            self._note("agent.failed", {"offer_id": offer.offer_id, "agent_id": offer.agent_id,
                                        "reason": "error", "error": str(exc)})
            self.link.send_message(m.OfferFailed(self.call_id, offer.offer_id, "error"))
            return
        self.offers[offer.offer_id] = AgentOffer(offer, leg)
        self._forward(leg)
        await self._ensure_queued()
        await self._apply(self.run.on_offering(self._now()))

    async def _ensure_queued(self) -> None:
        """An Offer (or Connect) before Queued: the call waits all the same (music)."""
        if self.run.state is RunState.BUSY:
            await self._apply(self.run.on_queued(self._now()))

    async def _cancel(self, msg: m.CancelOffer) -> None:
        held = self.offers.get(msg.offer_id)
        if held is None or not held.live:
            return
        if held.state in (OfferState.BRIDGED, OfferState.HELD):
            log.warning("call %s: CancelOffer %s for a bridged call, ignored", self.call_id,
                        msg.offer_id)
            return
        self._note("agent.cancelled", {"offer_id": msg.offer_id,
                                       "agent_id": held.offer.agent_id, "reason": msg.reason})
        await self._hang_up(held)

    async def _connect(self, msg: m.Connect) -> None:
        held = self.offers.get(msg.offer_id)
        if held is None or held.state is not OfferState.ANSWERED:
            log.warning("call %s: Connect for offer %s, which is not answered", self.call_id,
                        msg.offer_id)
            return
        if held.leg.media is None:
            held.connect_pending = True  # bridged once its audio is up
            return
        await self._bridge(held)

    async def _bridge(self, held: AgentOffer) -> None:
        held.connect_pending = False
        await self._ensure_queued()
        await self._apply(self.run.on_bridged(self._now()))
        try:
            await self.media.bridge(self.caller, held.leg)
        except MediaError as exc:
            if held.leg.ended is not None:
                return  # the agent hung up meanwhile: its LegHungUp, in the inbox, says so
            log.error("call %s: cannot bridge agent %s: %s", self.call_id,
                      held.offer.agent_id, exc)
            await self._hang_up(held)
            return
        held.set_state(OfferState.BRIDGED)
        if self.supervisor.connected:  # a transfer's next agent: the supervisor hears them
            await self.supervisor.apply()
        self._note("agent.connected", {"offer_id": held.offer.offer_id,
                                       "agent_id": held.offer.agent_id,
                                       "queue": held.offer.queue})
        if held.offer.record:
            await self._start_recording(held)

    # -- the agent legs' events ---------------------------------------------------------

    def owns(self, event: LegEvent) -> bool:
        return (any(o.leg.leg_id == event.leg_id for o in self.offers.values())
                or self.transfers.owns(event) or self.supervisor.owns(event))

    async def on_agent_event(self, event: LegEvent) -> None:
        if self.transfers.owns(event):
            await self.transfers.on_outside_event(event)
            return
        if self.supervisor.owns(event):
            await self.supervisor.on_event(event)
            return
        held = next((o for o in self.offers.values() if o.leg.leg_id == event.leg_id), None)
        if held is None:
            return
        offer = held.offer
        ids = {"offer_id": offer.offer_id, "agent_id": offer.agent_id}
        if isinstance(event, LegRinging):
            if held.state is OfferState.CALLING:
                held.set_state(OfferState.RINGING)
                self._note("agent.ringing", {**ids, "sip_code": event.status_code})
                self.link.send_message(m.OfferRinging(self.call_id, offer.offer_id))
        elif isinstance(event, LegAnswered):
            if held.state in (OfferState.CALLING, OfferState.RINGING):
                held.set_state(OfferState.ANSWERED)
                self._note("agent.answered", ids)
                self.link.send_message(m.OfferAnswered(self.call_id, offer.offer_id))
            elif held.state is OfferState.CANCELLED:
                await held.leg.hangup()  # answered as our CANCEL crossed it: BYE
        elif isinstance(event, MediaReady):
            if held.connect_pending and held.state is OfferState.ANSWERED:
                await self._bridge(held)
        elif isinstance(event, LegFailed):
            if held.state in (OfferState.CALLING, OfferState.RINGING):
                reason = failure_reason(event.status_code)
                self._note("agent.failed", {**ids, "reason": reason,
                                            "sip_code": event.status_code})
                self.link.send_message(m.OfferFailed(self.call_id, offer.offer_id, reason,
                                                     event.status_code))
            held.set_state(OfferState.ENDED)
        elif isinstance(event, LegHeld | LegResumed):
            await self._hold(held, isinstance(event, LegHeld))
        elif isinstance(event, LegReferred):
            self.transfers.referred(held, event.refer_to, event.replaces)
        elif isinstance(event, LegHungUp):
            if not await self.transfers.agent_left(held, event):
                await self._agent_hung_up(held, event)

    async def _hold(self, held: AgentOffer, on: bool) -> None:
        now = self._now()
        ids = {"offer_id": held.offer.offer_id, "agent_id": held.offer.agent_id}
        if on and held.state is OfferState.BRIDGED:
            held.set_state(OfferState.HELD)
            await self._unbridge(held)
            self._note("agent.held", ids)
            self.link.send_message(m.Held(self.call_id))
            await self._apply(self.run.on_agent_hold(now))
        elif not on and held.state is OfferState.HELD:
            held.set_state(OfferState.BRIDGED)
            await self._apply(self.run.on_agent_resume(now))
            self._note("agent.resumed", ids)
            self.link.send_message(m.Resumed(self.call_id))
            try:
                await self.media.bridge(self.caller, held.leg)
            except MediaError as exc:
                log.error("call %s: cannot bridge again after hold: %s", self.call_id, exc)

    async def _agent_hung_up(self, held: AgentOffer, event: LegHungUp) -> None:
        was = held.state
        held.set_state(OfferState.ENDED)
        self.offers.pop(held.offer.offer_id, None)
        if was not in (OfferState.ANSWERED, OfferState.BRIDGED, OfferState.HELD):
            return  # failed or cancelled: already told
        await self._stop_recording(held)
        await self._unbridge(held)
        self._note("agent.hangup", {"offer_id": held.offer.offer_id,
                                    "agent_id": held.offer.agent_id,
                                    "sip_code": event.status_code, "reason": event.reason})
        if self.caller.ended is not None:
            return  # both gone: the caller's end was told already
        if self.in_acd:
            self.in_acd = False
            self.link.send_message(m.AgentGone(self.call_id))
        now = self._now()
        if was is OfferState.ANSWERED:  # gone before the bridge: the caller never talked
            await self._ensure_queued()
            await self._apply(self.run.on_bridged(now))
        await self._apply(self.run.on_agent_done(now))

    # -- recording ----------------------------------------------------------------------

    async def _start_recording(self, held: AgentOffer) -> None:
        self.segments += 1
        day = dt.datetime.fromtimestamp(self._wall(), dt.UTC).strftime("%Y-%m-%d")
        path = self.recordings_dir / day / f"{self.call_id}-agent{self.segments}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            rec = await self.media.start_recording(self.caller, held.leg, path)
        except (MediaError, ValueError) as exc:
            log.error("call %s: cannot record the agent segment: %s", self.call_id, exc)
            return
        self.recording = (rec, held.offer)

    async def _stop_recording(self, held: AgentOffer | None = None) -> None:
        if self.recording is None or (held is not None and self.recording[1] is not held.offer):
            return
        rec, offer = self.recording
        self.recording = None
        try:
            duration_s = await rec.stop()
        except MediaError as exc:
            log.error("call %s: the agent segment's recording failed: %s", self.call_id, exc)
            return
        self._note("recording", {"path": str(rec.path), "agent_id": offer.agent_id,
                                 "queue": offer.queue, "duration_s": round(duration_s, 2),
                                 "channels": 2})

    # -- ending -------------------------------------------------------------------------

    def _bridged(self) -> AgentOffer | None:
        return next((o for o in self.offers.values()
                     if o.state in (OfferState.BRIDGED, OfferState.HELD)), None)

    async def _unbridge(self, held: AgentOffer) -> None:
        try:
            await self.media.unbridge(self.caller, held.leg)
        except MediaError as exc:
            log.warning("call %s: unbridge: %s", self.call_id, exc)

    async def _hang_up(self, held: AgentOffer) -> None:
        """CANCEL a ringing leg, BYE an answered one; its end comes as events."""
        was = held.state
        held.set_state(OfferState.CANCELLED)
        if was in (OfferState.BRIDGED, OfferState.HELD):
            await self._stop_recording(held)
            await self._unbridge(held)
        try:
            if was in (OfferState.CALLING, OfferState.RINGING):
                await held.leg.cancel()
            else:
                await held.leg.hangup()
        except MediaError as exc:
            log.info("call %s: agent leg already gone: %s", self.call_id, exc)

    async def _drop_offers(self, why: str) -> None:
        for held in list(self.offers.values()):
            if held.live:
                await self._hang_up(held)

    async def caller_gone(self) -> None:
        """The caller's leg ended (they hung up, or the IVR ended it): tell the ACD once,
        and hang up every agent leg."""
        if self.in_acd:
            self.in_acd = False
            self.link.send_message(m.CallerGone(self.call_id))
        await self._stop_recording()
        await self._drop_offers("caller-gone")
        await self.transfers.caller_gone()
        await self.supervisor.caller_gone()
