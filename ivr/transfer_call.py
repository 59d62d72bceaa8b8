"""Transfers, consults and conferences in a call's session: the worker's side (B2BUA) of
``ivr/acd/transfer.py`` and ``consult.py``, used by ``ivr/queue_call.AcdCall``.

The controller decides; this module moves legs and music::

    Release(A)         BYE A's leg; with nobody left with the caller: music, and the flow
                       waits again (``FlowRun.on_transfer_wait``) for the next agent, queue
                       or node
    ConsultHold(A, B)  the caller leaves A's bridge and hears music; the Offer that follows
                       rings B and is never bridged to the caller
    ConsultConnect     A and B hear each other
    ConsultEnd         the caller is bridged with A again (music off)
    BridgeAgent(B)     the caller is bridged with B (A leaves by Release or hung up)
    Conference         caller, A and B all hear each other
    DialOut(number)    the worker dials the number and bridges the caller to it

While a consult or conference is up, an agent's leg that ends is ``AgentLeft`` (the ACD
says what follows), never ``AgentGone`` (which would send the caller on in the flow). A REFER
from an agent's phone (``media.LegReferred``) is ``TransferAsked``: the worker answers it
and never passes it to the caller. Every bridge of the caller with an agent records that
agent's segment when the call's offers asked for recording.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from media import CallLeg, LegAnswered, LegEvent, LegFailed, LegHungUp, MediaError, MediaReady

from . import transfer_messages as tm
from .flow import RunState

if TYPE_CHECKING:
    from .queue_call import AcdCall, AgentOffer

log = logging.getLogger("ivr.transfer_call")

_USER = re.compile(r"^<?(?:sips?|tel):([^@;>]+)")


def refer_target(refer_to: str, agents: frozenset[str] | None = None) -> str:
    """The ACD target of a phone's Refer-To: ``agent:ID`` for a user part that is
    digits of an agent's length or a known agent, ``tel:NUMBER`` for other numbers,
    ``queue:NAME`` for a name."""
    match = _USER.match(refer_to.strip())
    user = match.group(1) if match else refer_to.strip()
    if agents is not None and user in agents:
        return f"agent:{user}"
    if re.fullmatch(r"\+?[0-9]{5,}", user):
        return f"tel:{user}"
    if user.isdigit():
        return f"agent:{user}"
    return f"queue:{user}"


class CallTransfers:
    def __init__(self, call: AcdCall) -> None:
        self.call = call
        self.consult_agent = ""  # A, while a consult or conference is up
        self.consult_offer = ""  # B's offer id
        self.conference = False
        self.outside: CallLeg | None = None  # a DialOut leg
        self.record = False  # the call's queue records agent segments (seen on an offer)
        self._outside_bridged = False

    # ---- the controller's messages ------------------------------------------------

    def _offer_of(self, agent_id: str) -> AgentOffer | None:
        for held in self.call.offers.values():
            if held.offer.agent_id == agent_id and held.live:
                return held
        return None

    def _with_caller(self) -> bool:
        from .queue_call import OfferState

        if self.consult_agent and not self.conference:
            return False
        return any(o.state in (OfferState.BRIDGED, OfferState.HELD)
                   for o in self.call.offers.values())

    def in_consult(self, held: AgentOffer) -> bool:
        return bool(self.consult_agent) and (
            held.offer.agent_id == self.consult_agent or held.offer.offer_id == self.consult_offer)

    async def on_message(self, msg: Any) -> None:
        call = self.call
        now = call._now()
        if isinstance(msg, tm.Release):
            held = self._offer_of(msg.agent_id)
            if held is not None:
                call._note("agent.released", {"agent_id": msg.agent_id, "reason": msg.reason})
                await call._hang_up(held)
            if not self.consult_agent and not self._with_caller():
                await call._apply(call.run.on_transfer_wait(now))
        elif isinstance(msg, tm.ConsultHold):
            a = self._offer_of(msg.agent_id)
            self.consult_agent, self.consult_offer = msg.agent_id, msg.offer_id
            if a is not None:
                self.record = self.record or a.offer.record
                await call._stop_recording(a)
                await call._unbridge(a)
            call._note("agent.consult", {"agent_id": msg.agent_id, "offer_id": msg.offer_id,
                                         "consult_agent": msg.consult_agent})
            await call._apply(call.run.on_agent_hold(now))
        elif isinstance(msg, tm.ConsultConnect):
            a, b = self._offer_of(msg.agent_id), self._offer_of(msg.consult_agent)
            if a is not None and b is not None:
                await self._bridge(a.leg, b.leg)
        elif isinstance(msg, tm.ConsultEnd):
            await self._consult_end(msg)
        elif isinstance(msg, tm.BridgeAgent):
            await self._hand_over(msg.agent_id)
        elif isinstance(msg, tm.Conference):
            from .queue_call import OfferState

            self.conference = True
            for agent_id in msg.agents:
                held = self._offer_of(agent_id)
                if held is not None:
                    if held.state is OfferState.ANSWERED:
                        held.set_state(OfferState.BRIDGED)
                    await self._bridge(call.caller, held.leg)
            await self._resume_caller()
        elif isinstance(msg, tm.DialOut):
            await self._dial_out(msg)

    async def _bridge(self, a: CallLeg, b: CallLeg) -> None:
        try:
            await self.call.media.bridge(a, b)
        except MediaError as exc:
            log.warning("call %s: bridge %s-%s: %s", self.call.call_id, a.leg_id, b.leg_id,
                        exc)

    async def _resume_caller(self) -> None:
        run, now = self.call.run, self.call._now()
        if run.state is RunState.BRIDGED:
            await self.call._apply(run.on_agent_resume(now))
        else:
            await self.call._apply(run.on_bridged(now))

    async def _consult_end(self, msg: tm.ConsultEnd) -> None:
        from .queue_call import OfferState

        call = self.call
        a, b = self._offer_of(msg.agent_id), self._offer_of(msg.consult_agent)
        if a is not None and b is not None:
            await call.media.unbridge(a.leg, b.leg)
        self.consult_agent, self.consult_offer, self.conference = "", "", False
        call._note("agent.consult_end", {"agent_id": msg.agent_id, "reason": msg.reason})
        if a is not None and a.state in (OfferState.BRIDGED, OfferState.HELD):
            await self._bridge(call.caller, a.leg)
            if a.offer.record and call.recording is None:
                await call._start_recording(a)
            await self._resume_caller()

    async def _hand_over(self, agent_id: str) -> None:
        from .queue_call import OfferState

        call = self.call
        b = self._offer_of(agent_id)
        was_conference = self.conference
        self.consult_agent, self.consult_offer, self.conference = "", "", False
        if b is None:
            return
        for other in call.offers.values():
            if other is not b and other.live:
                await call.media.unbridge(other.leg, b.leg)
        b.set_state(OfferState.BRIDGED)
        if not was_conference:
            await self._bridge(call.caller, b.leg)
        call._note("agent.connected", {"offer_id": b.offer.offer_id, "agent_id": agent_id,
                                       "queue": b.offer.queue, "by": "transfer"})
        await self._resume_caller()
        if call.supervisor.connected:
            await call.supervisor.apply()
        if call.recording is None and (self.record or b.offer.record):
            await call._start_recording(b)

    # ---- legs -----------------------------------------------------------------------

    async def agent_left(self, held: AgentOffer, event: LegHungUp) -> bool:
        """An agent's leg ended during a consult or conference: ``AgentLeft`` (True), or
        not ours to handle (False)."""
        from .queue_call import OfferState

        if not self.in_consult(held) and not self.conference:
            return False
        if held.state not in (OfferState.ANSWERED, OfferState.BRIDGED, OfferState.HELD):
            return False  # a ring that failed, a leg we ended: queue_call's way
        call = self.call
        held.set_state(OfferState.ENDED)
        call.offers.pop(held.offer.offer_id, None)
        await call._stop_recording(held)
        await call._unbridge(held)
        call._note("agent.hangup", {"offer_id": held.offer.offer_id,
                                    "agent_id": held.offer.agent_id,
                                    "sip_code": event.status_code, "reason": event.reason})
        if call.caller.ended is None:
            call.link.send_message(tm.AgentLeft(call.call_id, held.offer.agent_id))
            if held.offer.agent_id == self.consult_agent and not self.conference:
                self.consult_agent = ""
                if not self._with_caller():  # B still rings: the caller waits for them
                    await call._apply(call.run.on_transfer_wait(call._now()))
        return True

    def referred(self, held: AgentOffer, refer_to: str, replaces: bool) -> None:
        """The agent's phone sent REFER (answered by the media layer, never passed on)."""
        call = self.call
        to = refer_target(refer_to)
        call._note("agent.refer", {"agent_id": held.offer.agent_id, "refer_to": refer_to,
                                   "to": to, "attended": replaces})
        call.link.send_message(tm.TransferAsked(call.call_id, held.offer.agent_id, to,
                                                replaces))

    # ---- an outside number ------------------------------------------------------------

    async def _dial_out(self, msg: tm.DialOut) -> None:
        call = self.call
        call.in_acd = False  # the ACD is done with the call
        uri = msg.uri or f"sip:{msg.number}"
        call._note("transfer.dial_out", {"number": msg.number, "uri": uri})
        try:
            self.outside = await call.media.place_call(uri, {"X-Call-Id": call.call_id})
        except (MediaError, ValueError) as exc:
            log.warning("call %s: cannot dial %s: %s", call.call_id, uri, exc)
            await self._outside_done("dial-failed")
            return
        call._forward(self.outside)

    def owns(self, event: LegEvent) -> bool:
        return self.outside is not None and event.leg_id == self.outside.leg_id

    async def on_outside_event(self, event: LegEvent) -> None:
        leg = self.outside
        if leg is None:
            return
        if isinstance(event, LegAnswered | MediaReady) and leg.media is not None:
            if not self._outside_bridged:
                self._outside_bridged = True
                await self._bridge(self.call.caller, leg)
                await self._resume_caller()
        elif isinstance(event, LegFailed):
            await self._outside_done(f"failed {event.status_code}")
        elif isinstance(event, LegHungUp):
            await self._outside_done("hangup")

    async def _outside_done(self, why: str) -> None:
        """The outside party is gone (or never came): the caller goes on in the flow."""
        call = self.call
        if self.outside is not None and self._outside_bridged:
            await call.media.unbridge(call.caller, self.outside)
        self.outside, self._outside_bridged = None, False
        call._note("transfer.outside_done", {"why": why})
        if call.caller.ended is None:
            run = call.run
            if run.state is not RunState.BRIDGED:
                await call._apply(run.on_bridged(call._now()))
            await call._apply(run.on_agent_done(call._now()))

    async def caller_gone(self) -> None:
        if self.outside is not None and self.outside.ended is None:
            try:
                await self.outside.hangup()
            except MediaError:
                pass
