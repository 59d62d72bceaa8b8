"""Consult (attended) transfers and three-way conferences, on top of ``transfer.py``.

One consult per call at a time; the call's agent (A) holds the caller (music) and the ACD
rings B: the agent named (``agent:ID``, ready) or a ready agent of the queue named
(``queue:NAME``, chosen by that queue's strategy; none ready: refused). ::

    RINGING ──B answers──▶ TALKING ──conference──▶ CONFERENCE
       │                     │  │                      │
       │ no answer, B        │  └── complete / A leaves ┴──▶ B has the caller (A: wrap-up)
       │ refuses or leaves   │
       └──────────┬──────────┴── cancel / B leaves ──▶ the caller is back with A
                  ▼
      caller back with A (ConsultEnded), never dropped

A leaving while B still rings makes it a blind transfer to B (no answer: back in the queue
at the caller's place). B's talk with A alone is not a segment (B goes back to ready with
no wrap-up); in a conference B's segment starts, and ends with B's wrap-up when B leaves.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from . import events as ev
from . import transfer_events as tx
from .config import AcdConfig
from .core import _STATE_NAMES
from .model import (
    Agent,
    AgentState,
    EntryState,
    InvalidStateError,
    Offer,
    OfferState,
    QueueEntry,
)
from .queue_log import QueueEvent
from .state import AcdError
from .strategies import Context
from .transfer import Target, TransferRefused, TransferringAcd, parse_target

log = logging.getLogger("ivr.acd")


class ConsultState(enum.Enum):
    RINGING = "ringing"
    TALKING = "talking"
    CONFERENCE = "conference"


@dataclass(eq=False)
class Consult:
    call_id: str
    agent_id: str  # A, who has the call
    to: str  # as asked: agent:ID or queue:NAME
    consult_agent: str  # B
    offer_id: str
    started_at: float
    state: ConsultState = ConsultState.RINGING
    conference_at: float | None = None

    def _set_state(self, new: ConsultState) -> None:
        log.debug("consult %s: %s -> %s", self.call_id, self.state.value, new.value)
        self.state = new


class ConsultingAcd(TransferringAcd):
    def __init__(self, config: AcdConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.consults: dict[str, Consult] = {}  # by call id
        self._consult_offers: dict[str, str] = {}  # offer id -> call id

    def consult_of(self, agent_id: str) -> Consult | None:
        """The consult ``agent_id`` takes part in (either side), if any."""
        for c in self.consults.values():
            if agent_id in (c.agent_id, c.consult_agent):
                return c
        return None

    # ---- starting -------------------------------------------------------------------

    def _before_transfer(self, entry: QueueEntry) -> None:
        if entry.call_id in self.consults:
            raise InvalidStateError(f"call {entry.call_id} is in a consult: complete or "
                                    "cancel it first")

    def _on_ConsultRequested(self, e: tx.ConsultRequested, now: float) -> None:
        entry, agent = self._connected_call(e.call_id, e.by)
        self._before_transfer(entry)
        target = parse_target(e.to)
        other = self._consultee(target, entry, agent, now)
        cfg = self.queues[entry.queue].cfg
        offer = Offer(f"{entry.call_id}#{self._next()}", entry.call_id, other.agent_id,
                      entry.queue, now, now + cfg.ring_timeout_s)
        self.offers[offer.offer_id] = offer
        self._consult_offers[offer.offer_id] = entry.call_id
        other.offer_id = offer.offer_id
        self.consults[entry.call_id] = Consult(entry.call_id, agent.agent_id, e.to,
                                               other.agent_id, offer.offer_id, now)
        self._move(other, AgentState.RESERVED, now, call_id=entry.call_id, queue=entry.queue)
        self._timer(offer.ring_until, "ring", offer.offer_id)
        self._log(now, QueueEvent.CONSULT, call_id=entry.call_id, queue=entry.queue,
                  agent_id=agent.agent_id, code=other.agent_id, reason=e.to)
        self._log(now, QueueEvent.RING, call_id=entry.call_id, queue=entry.queue,
                  agent_id=other.agent_id, reason="consult")
        self._out.append(tx.ConsultStarted(entry.call_id, agent.agent_id, e.to,
                                           offer.offer_id, other.agent_id))
        self._out.append(ev.OfferAgent(offer.offer_id, entry.call_id, other.agent_id,
                                       entry.queue, now - entry.enter_at, cfg.ring_timeout_s,
                                       cfg.record))

    def _consultee(self, target: Target, entry: QueueEntry, agent: Agent,
                   now: float) -> Agent:
        if target.kind == "agent":
            return self._ready_agent(target.value, agent.agent_id)
        if target.kind != "queue":
            raise TransferRefused(f"a consult goes to agent:ID or queue:NAME; {target} "
                                  "takes a blind transfer")
        queue = self.queues.get(target.value)
        if queue is None:
            raise TransferRefused(f"no queue {target.value!r} in the ACD file (queues: "
                                  f"{', '.join(self.queues)})")
        ready = [self.agents[a] for a in sorted(queue.ready) if a != agent.agent_id]
        if not ready:
            raise TransferRefused(f"no agent of queue {queue.name} is ready to consult; "
                                  f"a blind transfer to {target} waits in line")
        chosen = queue.strategy.choose(entry, ready, Context(queue.name, now, self._rng))
        return chosen[0]

    # ---- the consulted agent's phone ------------------------------------------------

    def _close(self, offer: Offer, state: OfferState) -> tuple[QueueEntry, Agent]:
        if offer.offer_id not in self._consult_offers:
            return super()._close(offer, state)
        offer._set_state(state)
        del self.offers[offer.offer_id]
        del self._consult_offers[offer.offer_id]
        self._ended_offers[offer.offer_id] = offer
        agent = self.agents[offer.agent_id]
        agent.offer_id = None
        return self.entries[offer.call_id], agent

    def _on_OfferAnswered(self, e: ev.OfferAnswered, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        if offer is None or offer.offer_id not in self._consult_offers:
            super()._on_OfferAnswered(e, now)
            return
        entry, other = self._close(offer, OfferState.ANSWERED)
        consult = self.consults[entry.call_id]
        other.misses = 0
        other.call_id, other.call_queue = entry.call_id, entry.queue
        self._move(other, AgentState.ON_CALL, now, call_id=entry.call_id, queue=entry.queue)
        consult._set_state(ConsultState.TALKING)
        self._out.append(tx.ConsultConnected(entry.call_id, consult.agent_id, other.agent_id))

    def _on_OfferFailed(self, e: ev.OfferFailed, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        if offer is None or offer.offer_id not in self._consult_offers:
            super()._on_OfferFailed(e, now)
            return
        self._consult_missed(offer, now, "no-answer" if e.reason == "no_answer"
                             else "rejected")

    def _timer_ring(self, offer_id: str, when: float, now: float) -> None:
        offer = self.offers.get(offer_id)
        if offer is None or offer_id not in self._consult_offers:
            super()._timer_ring(offer_id, when, now)
            return
        self._out.append(ev.CancelOffer(offer_id, offer.call_id, offer.agent_id, "no-answer"))
        self._consult_missed(offer, now, "no-answer")

    def _consult_missed(self, offer: Offer, now: float, reason: str) -> None:
        """B did not take the consult: a miss like any ring; the caller is back with A."""
        entry, other = self._close(offer, OfferState.NO_ANSWER if reason == "no-answer"
                                   else OfferState.REJECTED)
        cfg = self.queues[offer.queue].cfg
        self._log(now, QueueEvent.RINGNOANSWER, call_id=offer.call_id, queue=offer.queue,
                  agent_id=offer.agent_id, ring_s=now - offer.started_at, reason=reason)
        other.misses += 1
        if cfg.autopause_after and other.misses >= cfg.autopause_after:
            other.misses = 0
            self._move(other, AgentState.NOT_READY, now, "no-answer", call_id=offer.call_id,
                       queue=offer.queue)
        else:
            self._move(other, AgentState.READY, now, call_id=offer.call_id, queue=offer.queue)
        self._consult_over(entry, now, reason)

    def _on_AgentStateRequested(self, e: ev.AgentStateRequested, now: float) -> None:
        agent = self.agents.get(e.agent_id)
        offer_id = agent.offer_id if agent is not None else None
        if (agent is None or offer_id not in self._consult_offers
                or agent.state is not AgentState.RESERVED or e.state == "ready"):
            super()._on_AgentStateRequested(e, now)
            return
        want = _STATE_NAMES.get(e.state)
        reasons = self.config.not_ready_reasons
        if want is None or (want is AgentState.NOT_READY and e.reason
                            and e.reason not in reasons):
            super()._on_AgentStateRequested(e, now)  # raises the core's clear error
            return
        offer = self.offers[offer_id or ""]
        entry = self.entries[offer.call_id]
        self._cancel(offer, now, "agent-state")  # B ready for a moment
        self._consult_over(entry, now, "rejected")
        super()._on_AgentStateRequested(e, now)

    # ---- ending ---------------------------------------------------------------------

    def _consult_over(self, entry: QueueEntry, now: float, reason: str) -> None:
        consult = self.consults.pop(entry.call_id)
        self._log(now, QueueEvent.CONSULTEND, call_id=entry.call_id, queue=entry.queue,
                  agent_id=consult.agent_id, code=consult.consult_agent, reason=reason,
                  hold_s=now - consult.started_at)
        self._out.append(tx.ConsultEnded(entry.call_id, consult.agent_id,
                                         consult.consult_agent, reason))

    def _release_consultee(self, consult: Consult, entry: QueueEntry, now: float,
                           why: str, release: bool = True,
                           end: str = "completed_agent") -> None:
        """B leaves: a ring is cancelled; a talk with A ends with no wrap-up; in a
        conference B's segment ends and their wrap-up starts."""
        other = self.agents[consult.consult_agent]
        if consult.state is ConsultState.RINGING:
            self._cancel(self.offers[consult.offer_id], now, why)
            return
        if release:
            self._out.append(tx.ReleaseAgent(entry.call_id, other.agent_id, why))
        if consult.state is ConsultState.CONFERENCE:
            self._wrap(other, entry.call_id, entry.queue, consult.conference_at or now, now,
                       end)
            return
        self._move(other, AgentState.WRAP_UP, now, call_id=entry.call_id, queue=entry.queue)
        self._end_wrapup(other, now)

    def _consult(self, call_id: str, by: str, *states: ConsultState) -> tuple[
            QueueEntry, Consult]:
        entry, _ = self._connected_call(call_id, by)
        consult = self.consults.get(call_id)
        if consult is None:
            raise InvalidStateError(f"call {call_id} has no consult")
        if consult.state not in states:
            if consult.state is ConsultState.RINGING:
                raise InvalidStateError(f"agent {consult.consult_agent} has not answered "
                                        "the consult yet: wait, or cancel it")
            raise InvalidStateError(f"call {call_id}'s consult is {consult.state.value}")
        return entry, consult

    def _on_ConsultCancelled(self, e: tx.ConsultCancelled, now: float) -> None:
        entry, consult = self._consult(e.call_id, e.by, *ConsultState)
        self._release_consultee(consult, entry, now, "consult-cancelled")
        self._consult_over(entry, now, "cancelled")

    def _on_ConferenceRequested(self, e: tx.ConferenceRequested, now: float) -> None:
        entry, consult = self._consult(e.call_id, e.by, ConsultState.TALKING)
        consult._set_state(ConsultState.CONFERENCE)
        consult.conference_at = now
        self._log(now, QueueEvent.CONFERENCE, call_id=entry.call_id, queue=entry.queue,
                  agent_id=consult.agent_id, code=consult.consult_agent)
        self._out.append(tx.ConferenceStarted(entry.call_id, (consult.agent_id,
                                                              consult.consult_agent)))
        self._out.append(tx.SegmentStarted(entry.call_id, consult.consult_agent, entry.queue,
                                           now))

    def _on_ConsultCompleted(self, e: tx.ConsultCompleted, now: float) -> None:
        entry, consult = self._consult(e.call_id, e.by, ConsultState.TALKING,
                                       ConsultState.CONFERENCE)
        self._hand_over(entry, consult, now, release=True)

    def _hand_over(self, entry: QueueEntry, consult: Consult, now: float,
                   release: bool) -> None:
        """A leaves; B, who answered, has the caller from now on."""
        del self.consults[entry.call_id]
        self._log(now, QueueEvent.ATTENDEDTRANSFER, call_id=entry.call_id, queue=entry.queue,
                  agent_id=consult.agent_id, code=consult.consult_agent, reason=consult.to,
                  wait_s=(entry.connected_at or now) - entry.enter_at,
                  talk_s=now - (entry.connected_at or now), hold_s=now - consult.started_at)
        self._out.append(tx.CallTransferred(entry.call_id, consult.agent_id, consult.to,
                                            "attended"))
        self._agent_leaves(entry, now, release)
        entry.agent_id = consult.consult_agent
        if consult.conference_at is None:
            entry.connected_at = now
            self._out.append(tx.BridgeAgent(entry.call_id, consult.consult_agent))
            self._segment_start(entry, consult.consult_agent, now)
        else:
            entry.connected_at = consult.conference_at

    # ---- legs that end --------------------------------------------------------------

    def _on_AgentLeft(self, e: tx.AgentLeft, now: float) -> None:
        entry = self.entries.get(e.call_id)
        consult = self.consults.get(e.call_id)
        if entry is None:
            return  # gone already
        if consult is not None and e.agent_id == consult.consult_agent:
            if consult.state is ConsultState.RINGING:
                self._consult_missed(self.offers[consult.offer_id], now, "rejected")
                return
            self._release_consultee(consult, entry, now, "consult-gone", release=False)
            self._consult_over(entry, now, "consult-gone")
            return
        if e.agent_id == entry.agent_id:
            self._on_AgentHungUp(ev.AgentHungUp(e.call_id), now)

    def _on_AgentHungUp(self, e: ev.AgentHungUp, now: float) -> None:
        entry = self.entries.get(e.call_id)
        consult = self.consults.get(e.call_id)
        if entry is None or consult is None or entry.agent_id != consult.agent_id:
            super()._on_AgentHungUp(e, now)
            return
        if consult.state is not ConsultState.RINGING:
            self._hand_over(entry, consult, now, release=False)
            return
        # B still rings: a blind transfer to B
        offer = self.offers[consult.offer_id]
        del self.consults[e.call_id]
        del self._consult_offers[offer.offer_id]
        self._log(now, QueueEvent.BLINDTRANSFER, call_id=entry.call_id, queue=entry.queue,
                  agent_id=consult.agent_id, code=consult.consult_agent, reason=consult.to,
                  wait_s=(entry.connected_at or now) - entry.enter_at,
                  talk_s=now - (entry.connected_at or now))
        self._out.append(tx.CallTransferred(entry.call_id, consult.agent_id, consult.to,
                                            "blind"))
        self._agent_leaves(entry, now, release=False)
        entry.agent_id, entry.connected_at = None, None
        entry._set_state(EntryState.OFFERED)
        self.queues[entry.queue].size += 1
        entry.offers.append(offer.offer_id)

    def _on_CallerHungUp(self, e: ev.CallerHungUp, now: float) -> None:
        self._caller_gone(e.call_id, now)
        super()._on_CallerHungUp(e, now)

    def _on_CallLost(self, e: ev.CallLost, now: float) -> None:
        self._caller_gone(e.call_id, now)
        super()._on_CallLost(e, now)

    def _caller_gone(self, call_id: str, now: float) -> None:
        consult = self.consults.get(call_id)
        if consult is None:
            return
        entry = self.entries[call_id]
        self._release_consultee(consult, entry, now, "caller-gone", end="completed_caller")
        self._consult_over(entry, now, "caller-gone")


__all__ = ["AcdError", "Consult", "ConsultState", "ConsultingAcd"]
