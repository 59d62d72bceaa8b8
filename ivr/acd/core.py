"""The ACD: queues of callers, agents, offers. A pure core: ``handle(event, now)`` and
``tick(now)`` return actions (``events.py``); it never reads a clock, sleeps or does I/O.
``next_timer()`` says when ``tick`` is next due. Every change is also a queue-log row
(``LogQueueEvent``), from which ``metrics.py`` computes the figures.

Routing: whenever an agent may be free or a call waits, the core takes, over all queues
with a ready agent, the first waiting entry (higher priority first, then earlier enter
time) that some ready agent may take, lets that queue's strategy choose among those agents,
and rings them. An agent is in at most one offer or call at a time, whatever their queues.
"""

from __future__ import annotations

import heapq
import logging
import math

from . import events as ev
from .config import AcdConfig
from .model import (
    Agent,
    AgentState,
    EntryState,
    InvalidStateError,
    Offer,
    OfferState,
    Outcome,
    QueueEntry,
)
from .queue import Key
from .queue_log import QueueEvent
from .state import AcdError, AcdState
from .strategies import Context

log = logging.getLogger("ivr.acd")


_STATE_NAMES = {"ready": AgentState.READY, "not_ready": AgentState.NOT_READY,
                "not-ready": AgentState.NOT_READY, "logged_out": AgentState.LOGGED_OUT,
                "logged-out": AgentState.LOGGED_OUT}


class Acd(AcdState):
    # ---- the two entry points -----------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[ev.Action]:
        self._out = []
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is None:
            raise TypeError(f"the ACD does not take {type(event).__name__} events")
        handler(event, now)
        self._dispatch(now)
        return self._out

    def tick(self, now: float) -> list[ev.Action]:
        self._out = []
        while self._timers and self._timers[0][0] <= now:
            when, _, kind, key = heapq.heappop(self._timers)
            getattr(self, "_timer_" + kind)(key, when, now)
        self._dispatch(now)
        return self._out

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def reconfigure(self, config: AcdConfig, now: float) -> list[ev.Action]:
        """Take a new ACD file (``ivr reload``), all or nothing: callers keep their places,
        agents their states. Refused (AcdError, nothing changed) when it would drop a queue
        that has callers, or an agent who is signed in or busy with a queue they would lose."""
        self._swap_config(config)
        self._out = []
        self._dirty = True
        self._dispatch(now)
        return self._out

    # ---- callers --------------------------------------------------------------------

    def _on_CallQueued(self, e: ev.CallQueued, now: float) -> None:
        queue = self.queues.get(e.queue)
        if queue is None:
            raise AcdError(f"no queue {e.queue!r} in the ACD file (queues: "
                           f"{', '.join(self.queues)})")
        if e.call_id in self.entries:
            raise AcdError(f"call {e.call_id} is already in queue "
                           f"{self.entries[e.call_id].queue}")
        cfg = queue.cfg
        if cfg.max_size is not None and queue.size >= cfg.max_size:
            self._log(now, QueueEvent.FULL, call_id=e.call_id, queue=e.queue, wait_s=0.0,
                      priority=e.priority)
            self._out.append(ev.Overflow(e.call_id, e.queue, "full", cfg.overflow_to))
            return
        if cfg.when_no_agents == "overflow" and not queue.logged_in(self.agents):
            self._log(now, QueueEvent.JOINEMPTY, call_id=e.call_id, queue=e.queue,
                      wait_s=0.0, priority=e.priority)
            self._out.append(ev.Overflow(e.call_id, e.queue, "no-agents", cfg.overflow_to))
            return
        entry = QueueEntry(e.call_id, e.queue, e.priority, now, self._next(), e.skills,
                           e.caller)
        self.entries[e.call_id] = entry
        queue.size += 1
        entry.enter_position = self._insert(entry)
        self._log(now, QueueEvent.ENTERQUEUE, call_id=e.call_id, queue=e.queue,
                  position=entry.enter_position, priority=e.priority, reason=e.caller)
        if cfg.max_wait_s is not None:
            self._timer(now + cfg.max_wait_s, "max_wait", e.call_id)
        for rule in cfg.skills.widen:
            self._timer(now + rule.after_s, "widen", e.call_id)
        if cfg.announce_every_s:
            self._timer(now + cfg.announce_every_s, "announce", e.call_id)

    def _leave(self, entry: QueueEntry, now: float, why: str) -> int | None:
        """Take a waiting or ringing entry out of line; its position if it was waiting."""
        if entry.state is EntryState.WAITING:
            return self._remove(entry)
        for offer_id in list(entry.offers):
            self._cancel(self.offers[offer_id], now, why)
        return None

    def _on_CallerHungUp(self, e: ev.CallerHungUp, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is None:
            return  # already gone (overflowed, or the agent's hang-up came first)
        if entry.state is EntryState.CONNECTED:
            self._complete(entry, now, QueueEvent.COMPLETECALLER, Outcome.COMPLETED_CALLER)
            return
        position = self._leave(entry, now, "caller-gone")
        self._end(entry, Outcome.ABANDONED, now, QueueEvent.ABANDON, position=position,
                  enter_position=entry.enter_position)

    def _on_CallLost(self, e: ev.CallLost, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is None:
            return
        if entry.state is EntryState.CONNECTED:
            self._complete(entry, now, QueueEvent.COMPLETECALLER, Outcome.COMPLETED_CALLER)
            return
        position = self._leave(entry, now, "caller-gone")
        self._end(entry, Outcome.FAILED, now, QueueEvent.EXITFAILURE, position=position,
                  reason="lost")

    def _on_CallerLeftWithKey(self, e: ev.CallerLeftWithKey, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is None:
            return
        if entry.state is EntryState.CONNECTED:
            raise InvalidStateError(f"call {e.call_id} is talking to an agent: it cannot "
                                    "leave the queue with a key")
        position = self._leave(entry, now, "caller-gone")
        self._end(entry, Outcome.KEY, now, QueueEvent.EXITWITHKEY, position=position,
                  code=e.key)

    def _on_AgentHungUp(self, e: ev.AgentHungUp, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is None:
            return
        if entry.state is not EntryState.CONNECTED:
            raise InvalidStateError(f"call {e.call_id} is {entry.state.value}: no agent "
                                    "leg to hang up")
        self._complete(entry, now, QueueEvent.COMPLETEAGENT, Outcome.COMPLETED_AGENT)

    def _on_CallHeld(self, e: ev.CallHeld, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is not None and entry.state is EntryState.CONNECTED and entry.held_at is None:
            entry.held_at = now
            self._log(now, QueueEvent.HOLD, call_id=entry.call_id, queue=entry.queue,
                      agent_id=entry.agent_id or "")

    def _on_CallResumed(self, e: ev.CallResumed, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is not None and entry.held_at is not None:
            self._log(now, QueueEvent.UNHOLD, call_id=entry.call_id, queue=entry.queue,
                      agent_id=entry.agent_id or "", hold_s=now - entry.held_at)
            entry.held_at = None

    def _complete(self, entry: QueueEntry, now: float, event: QueueEvent,
                  outcome: Outcome) -> None:
        self._on_CallResumed(ev.CallResumed(entry.call_id), now)
        talk_s = now - (entry.connected_at or now)
        agent = self.agents[entry.agent_id or ""]
        queue = self.queues[entry.queue]
        self._end(entry, outcome, now, event, talk_s=talk_s)
        agent.calls_handled += 1
        agent.talk_time_s += talk_s
        agent.last_call_id, agent.last_call_queue = entry.call_id, entry.queue
        queue.handled += 1
        queue.handle_total_s += talk_s + queue.cfg.wrapup_s
        self._move(agent, AgentState.WRAP_UP, now, call_id=entry.call_id, queue=entry.queue)
        coded = agent.coded_call_id == entry.call_id
        if queue.cfg.wrapup_s and not (coded and queue.cfg.wrapup_ends_on_code):
            agent.wrapup_until = now + queue.cfg.wrapup_s
            self._timer(agent.wrapup_until, "wrapup", agent.agent_id)
        else:
            self._end_wrapup(agent, now)

    # ---- offers ---------------------------------------------------------------------

    def _offer(self, entry: QueueEntry, agent: Agent, now: float) -> None:
        cfg = self.queues[entry.queue].cfg
        offer = Offer(f"{entry.call_id}#{self._next()}", entry.call_id, agent.agent_id,
                      entry.queue, now, now + cfg.ring_timeout_s)
        self.offers[offer.offer_id] = offer
        entry.offers.append(offer.offer_id)
        agent.offer_id = offer.offer_id
        self._move(agent, AgentState.RESERVED, now, call_id=entry.call_id, queue=entry.queue)
        self._timer(offer.ring_until, "ring", offer.offer_id)
        self._log(now, QueueEvent.RING, call_id=entry.call_id, queue=entry.queue,
                  agent_id=agent.agent_id)
        self._out.append(ev.OfferAgent(offer.offer_id, entry.call_id, agent.agent_id,
                                       entry.queue, now - entry.enter_at, cfg.ring_timeout_s,
                                       cfg.record))

    def _on_OfferAnswered(self, e: ev.OfferAnswered, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        if offer is None:
            late = self._ended_offers.get(e.offer_id)
            if late is None:
                raise AcdError(f"no offer {e.offer_id!r}")
            # answered after it was cancelled (another agent won, the caller left): hang up
            self._out.append(ev.CancelOffer(late.offer_id, late.call_id, late.agent_id,
                                            "answered-too-late"))
            return
        entry, agent = self._close(offer, OfferState.ANSWERED)
        for other in list(entry.offers):
            self._cancel(self.offers[other], now, "answered-elsewhere")
        entry._set_state(EntryState.CONNECTED)
        entry.agent_id, entry.connected_at = agent.agent_id, now
        agent.misses = 0
        agent.call_id, agent.call_queue = entry.call_id, entry.queue
        self._move(agent, AgentState.ON_CALL, now, call_id=entry.call_id, queue=entry.queue)
        self.queues[entry.queue].size -= 1
        self._log(now, QueueEvent.CONNECT, call_id=entry.call_id, queue=entry.queue,
                  agent_id=agent.agent_id, wait_s=now - entry.wait_start,
                  ring_s=now - offer.started_at)
        self._out.append(ev.CallConnected(offer.offer_id, entry.call_id, agent.agent_id,
                                          entry.queue))

    def _on_OfferFailed(self, e: ev.OfferFailed, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        if offer is None:
            return  # already closed (cancelled, timed out)
        entry = self.entries[offer.call_id]
        if e.reason == "error" and len(entry.offers) > 1:
            # ring-all beyond the legs the caller's worker has free: not the agent's miss;
            # they stay ready, passed over for this caller while the others ring
            entry.tried.add(offer.agent_id)
            _, agent = self._close(offer, OfferState.REJECTED)
            self._log(now, QueueEvent.RINGCANCELED, call_id=offer.call_id, queue=offer.queue,
                      agent_id=offer.agent_id, ring_s=now - offer.started_at, reason="no-leg")
            self._move(agent, AgentState.READY, now, call_id=offer.call_id, queue=offer.queue)
            return
        self._missed(offer, now, e.reason, OfferState.REJECTED
                     if e.reason != "no_answer" else OfferState.NO_ANSWER)

    def _timer_ring(self, offer_id: str, when: float, now: float) -> None:
        offer = self.offers.get(offer_id)
        if offer is None:
            return
        self._out.append(ev.CancelOffer(offer.offer_id, offer.call_id, offer.agent_id,
                                        "no-answer"))
        self._missed(offer, now, "timeout", OfferState.NO_ANSWER)

    def _missed(self, offer: Offer, now: float, reason: str, state: OfferState) -> None:
        entry, agent = self._close(offer, state)
        cfg = self.queues[offer.queue].cfg
        self._log(now, QueueEvent.RINGNOANSWER, call_id=offer.call_id, queue=offer.queue,
                  agent_id=offer.agent_id, ring_s=now - offer.started_at, reason=reason)
        agent.misses += 1
        entry.tried.add(agent.agent_id)
        if cfg.autopause_after and agent.misses >= cfg.autopause_after:
            agent.misses = 0
            self._move(agent, AgentState.NOT_READY, now, "no-answer", call_id=offer.call_id,
                       queue=offer.queue)
        else:
            self._move(agent, AgentState.READY, now, call_id=offer.call_id, queue=offer.queue)
        if not entry.offers:
            self._requeue(entry, now)

    # ---- timers ---------------------------------------------------------------------

    def _timer_max_wait(self, call_id: str, when: float, now: float) -> None:
        entry = self.entries.get(call_id)
        if entry is not None and entry.state is EntryState.WAITING:
            self._timeout(entry, now)  # a ringing entry is checked when it is re-queued

    def _timer_widen(self, call_id: str, when: float, now: float) -> None:
        self._dirty = True  # more agents may now take the call

    def _timer_announce(self, call_id: str, when: float, now: float) -> None:
        entry = self.entries.get(call_id)
        if entry is None or entry.state is EntryState.CONNECTED:
            return
        queue = self.queues[entry.queue]
        self._timer(when + queue.cfg.announce_every_s, "announce", call_id)
        if entry.state is not EntryState.WAITING:
            return  # never to a caller whose agent's phone is ringing
        position = queue.position(entry)
        estimate_s = queue.estimate_s(position, self.agents)
        said = (position, math.ceil(estimate_s / 60))
        if said != entry.announced:
            entry.announced = said
            self._out.append(ev.AnnouncePosition(call_id, entry.queue, position, estimate_s))

    def _timer_wrapup(self, agent_id: str, when: float, now: float) -> None:
        agent = self.agents[agent_id]
        if agent.state is AgentState.WRAP_UP and agent.wrapup_until == when:
            self._end_wrapup(agent, now)

    # ---- agents ---------------------------------------------------------------------

    def _end_wrapup(self, agent: Agent, now: float) -> None:
        state, reason = agent.pending or (AgentState.READY, "")
        agent.pending, agent.wrapup_until = None, None
        call_id, queue = agent.call_id or "", agent.call_queue
        agent.call_id, agent.call_queue = None, ""
        agent.idle_since = now
        self._move(agent, state, now, reason, call_id=call_id, queue=queue)
        if state is AgentState.LOGGED_OUT:
            self._check_empty(agent, now)

    def _on_AgentStateRequested(self, e: ev.AgentStateRequested, now: float) -> None:
        agent = self._agent(e.agent_id)
        want = _STATE_NAMES.get(e.state)
        if want is None:
            raise AcdError(f"unknown agent state {e.state!r}: ready, not_ready or logged_out")
        reasons = self.config.not_ready_reasons
        if want is AgentState.NOT_READY and e.reason and e.reason not in reasons:
            raise AcdError(f"unknown not-ready reason {e.reason!r}; one of {', '.join(reasons)}")
        reason = e.reason if want is AgentState.NOT_READY else ""
        current = agent.state
        if current is AgentState.ON_CALL:
            agent.pending = None if want is AgentState.READY else (want, reason)
            return
        if current is AgentState.WRAP_UP:
            agent.pending = (want, reason)
            self._end_wrapup(agent, now)
            return
        if current is want and want is not AgentState.NOT_READY:
            return  # already there
        if current is AgentState.RESERVED:
            if want is AgentState.READY:
                return
            offer = self.offers[agent.offer_id or ""]
            entry = self.entries[offer.call_id]
            self._cancel(offer, now, "agent-state", then=(want, reason))
            if not entry.offers:
                self._requeue(entry, now)
        else:
            if current is AgentState.LOGGED_OUT or want is AgentState.READY:
                agent.idle_since = now if current is AgentState.LOGGED_OUT else agent.idle_since
                agent.misses = 0
            self._move(agent, want, now, reason)
        if want is AgentState.LOGGED_OUT:
            self._check_empty(agent, now)

    def _check_empty(self, agent: Agent, now: float) -> None:
        """The last agent of a queue signed out: its callers leave (when_no_agents)."""
        for name in agent.queues:
            queue = self.queues[name]
            if queue.cfg.when_no_agents != "overflow" or queue.logged_in(self.agents):
                continue
            for entry in self.waiting(name):
                self._remove(entry)
                self._end(entry, Outcome.NO_AGENTS, now, QueueEvent.EXITEMPTY)
                self._out.append(ev.Overflow(entry.call_id, name, "no-agents",
                                             queue.cfg.overflow_to))

    def _on_WrapUpCoded(self, e: ev.WrapUpCoded, now: float) -> None:
        agent = self._agent(e.agent_id)
        if e.code not in self.codes:
            close = [c for c in self.codes if e.code.lower() in c.lower()][:5]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise AcdError(f"unknown wrap-up code {e.code!r}{hint}")
        if agent.state is AgentState.ON_CALL:
            call_id, queue = agent.call_id, agent.call_queue
        else:
            call_id, queue = agent.last_call_id, agent.last_call_queue
        if call_id is None:
            raise AcdError(f"agent {agent.agent_id} has had no call to give a code to")
        if agent.coded_call_id == call_id:
            raise AcdError(f"agent {agent.agent_id}: call {call_id} already has its code")
        agent.coded_call_id = call_id
        self._log(now, QueueEvent.WRAPUP, call_id=call_id, queue=queue,
                  agent_id=agent.agent_id, code=e.code, note=e.note)
        if (agent.state is AgentState.WRAP_UP
                and self.queues[queue].cfg.wrapup_ends_on_code):
            self._end_wrapup(agent, now)

    # ---- routing --------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        if not self._dirty:
            return
        while True:
            best: tuple[Key, QueueEntry, list[Agent]] | None = None
            for queue in self.queues.values():
                found = queue.first_takeable(self.entries, self.agents, now,
                                             best[0] if best else None)
                if found is not None:
                    best = found
            if best is None:
                self._dirty = False
                return
            _, entry, agents = best
            queue = self.queues[entry.queue]
            chosen = queue.strategy.choose(entry, agents, Context(queue.name, now, self._rng))
            queue.remove(entry)
            entry._set_state(EntryState.OFFERED)
            for agent in chosen:
                self._offer(entry, agent, now)
