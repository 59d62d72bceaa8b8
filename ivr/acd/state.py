"""The ACD's state and the bookkeeping every handler shares: the agents, queues, live
entries and offers, the timer heap, the actions being collected, and the moves that keep
them consistent (an agent's state with the queues' ready sets and a queue-log row; an entry
in or out of its line; an offer closed). ``core.Acd`` adds the event handlers and routing.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from typing import Any

from . import events as ev
from .config import AcdConfig
from .model import Agent, AgentState, EntryState, Offer, OfferState, Outcome, QueueEntry
from .queue import Queue
from .queue_log import QueueEvent, QueueLogRow, agent_state_event
from .strategies import make_strategy


class AcdError(Exception):
    """A request the ACD cannot take (unknown agent, queue or code; a bad state name)."""


_NAME = {s: s.value for s in AgentState}  # Enum.value is a slow property on a hot path
_ROW_EVENT = {(a, b): agent_state_event(a.value, b.value) for a in AgentState for b in AgentState}
_KEEP_ENDED_OFFERS = 10000  # to answer a late "answered" for an offer already closed


class AcdState:
    def __init__(self, config: AcdConfig, seed: int = 0) -> None:
        self.config = config
        self.codes = config.reason_codes()
        self.queues = {name: Queue(name, q, make_strategy(q.strategy))
                       for name, q in config.queues.items()}
        self.agents: dict[str, Agent] = {}
        for order, (agent_id, a) in enumerate(config.agents.items()):
            self.agents[agent_id] = Agent(agent_id, a.name, dict(a.queues), dict(a.skills),
                                          order=order)
            for queue in a.queues:
                self.queues[queue].members.append(agent_id)
        self.entries: dict[str, QueueEntry] = {}  # live ones
        self.offers: dict[str, Offer] = {}  # ringing ones
        self._ended_offers: OrderedDict[str, Offer] = OrderedDict()
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._rng = random.Random(seed)
        self._out: list[ev.Action] = []
        self._dirty = False  # a caller joined or an agent became ready: routing has work

    def waiting(self, queue: str) -> list[QueueEntry]:
        """The queue's waiting callers in the order they will be served."""
        return [self.entries[cid] for _, cid in self.queues[queue].waiting]

    def position(self, entry: QueueEntry) -> int:
        return self.queues[entry.queue].position(entry)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _timer(self, when: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (when, self._next(), kind, key))

    def _log(self, now: float, event: QueueEvent, **fields: Any) -> None:
        self._out.append(ev.LogQueueEvent(QueueLogRow(now, event, **fields)))

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdError(f"no agent {agent_id!r} in the ACD file") from None

    def _move(self, agent: Agent, new: AgentState, now: float, reason: str = "",
              call_id: str = "", queue: str = "") -> None:
        old = agent._set_state(new, now, reason)
        if new is AgentState.READY:
            self._dirty = True
            for q in agent.queues:
                self.queues[q].ready.add(agent.agent_id)
        elif old is AgentState.READY:
            for q in agent.queues:
                self.queues[q].ready.discard(agent.agent_id)
        old_name, new_name = _NAME[old], _NAME[new]
        self._out.append(ev.AgentStateChanged(agent.agent_id, old_name, new_name, reason))
        self._log(now, _ROW_EVENT[old, new], agent_id=agent.agent_id, call_id=call_id,
                  queue=queue, reason=reason, old_state=old_name, new_state=new_name)

    def _insert(self, entry: QueueEntry) -> int:
        self._dirty = True
        return self.queues[entry.queue].insert(entry)

    def _remove(self, entry: QueueEntry) -> int:
        return self.queues[entry.queue].remove(entry)

    def _end(self, entry: QueueEntry, outcome: Outcome, now: float, event: QueueEvent,
             **fields: Any) -> None:
        entry._set_state(EntryState.ENDED, outcome)
        del self.entries[entry.call_id]
        self.queues[entry.queue].size -= outcome not in (Outcome.COMPLETED_AGENT,
                                                         Outcome.COMPLETED_CALLER)
        self._log(now, event, call_id=entry.call_id, queue=entry.queue,
                  agent_id=entry.agent_id or "", wait_s=(entry.connected_at or now)
                  - entry.enter_at, **fields)

    def _close(self, offer: Offer, state: OfferState) -> tuple[QueueEntry, Agent]:
        offer._set_state(state)
        del self.offers[offer.offer_id]
        self._ended_offers[offer.offer_id] = offer
        if len(self._ended_offers) > _KEEP_ENDED_OFFERS:
            self._ended_offers.popitem(last=False)
        entry = self.entries[offer.call_id]
        entry.offers.remove(offer.offer_id)
        agent = self.agents[offer.agent_id]
        agent.offer_id = None
        return entry, agent

    def _cancel(self, offer: Offer, now: float, why: str,
                then: tuple[AgentState, str] = (AgentState.READY, "")) -> None:
        """Stop a ring that is nobody's fault; the agent goes to ``then`` (ready)."""
        entry, agent = self._close(offer, OfferState.CANCELLED)
        self._out.append(ev.CancelOffer(offer.offer_id, offer.call_id, offer.agent_id, why))
        self._log(now, QueueEvent.RINGCANCELED, call_id=offer.call_id, queue=offer.queue,
                  agent_id=offer.agent_id, ring_s=now - offer.started_at, reason=why)
        self._move(agent, then[0], now, then[1], call_id=offer.call_id, queue=offer.queue)

    def _requeue(self, entry: QueueEntry, now: float) -> None:
        entry._set_state(EntryState.WAITING)
        position = self._insert(entry)
        cfg = self.queues[entry.queue].cfg
        if cfg.max_wait_s is not None and now - entry.wait_start >= cfg.max_wait_s:
            self._timeout(entry, now)
            return
        self._out.append(ev.RequeueCall(entry.call_id, entry.queue, position))

    def _timeout(self, entry: QueueEntry, now: float) -> None:
        position = self._remove(entry)
        self._end(entry, Outcome.TIMEOUT, now, QueueEvent.EXITWITHTIMEOUT, position=position)
        cfg = self.queues[entry.queue].cfg
        self._out.append(ev.Overflow(entry.call_id, entry.queue, "timeout", cfg.overflow_to))

    def _swap_config(self, config: AcdConfig) -> None:
        """Check ``config`` against the live state, then take it (see ``Acd.reconfigure``)."""
        problems = []
        live = {e.queue for e in self.entries.values()}
        for name in sorted(self.queues.keys() - config.queues.keys()):
            if name in live:
                problems.append(f"queue {name!r} has callers: keep it until they are served")
        for agent_id, agent in self.agents.items():
            new = config.agents.get(agent_id)
            busy_in = (self.offers[agent.offer_id].queue if agent.offer_id
                       else agent.call_queue if agent.call_id else None)
            if new is None and agent.state is not AgentState.LOGGED_OUT:
                problems.append(f"agent {agent_id} is {agent.state.value}: sign them out "
                                "before removing them")
            elif new is not None and busy_in is not None and busy_in not in new.queues:
                problems.append(f"agent {agent_id} has a call from {busy_in!r}, which their "
                                "new queues lack: change it after the call")
        if problems:
            raise AcdError("ACD file not taken, nothing changed:\n  " + "\n  ".join(problems))
        queues = {}
        for name, cfg in config.queues.items():
            old = self.queues.get(name)
            keep = old is not None and old.cfg.strategy == cfg.strategy
            queue = Queue(name, cfg, old.strategy if keep and old else make_strategy(cfg.strategy))
            if old is not None:
                queue.waiting, queue.size = old.waiting, old.size
                queue.handled, queue.handle_total_s = old.handled, old.handle_total_s
            queues[name] = queue
        agents = {}
        for order, (agent_id, a) in enumerate(config.agents.items()):
            agent = self.agents.get(agent_id) or Agent(agent_id)
            agent.name, agent.queues, agent.skills = a.name, dict(a.queues), dict(a.skills)
            agent.order = order
            agents[agent_id] = agent
            for name in a.queues:
                queues[name].members.append(agent_id)
                if agent.state is AgentState.READY:
                    queues[name].ready.add(agent_id)
        self.config, self.codes = config, config.reason_codes()
        self.queues, self.agents = queues, agents
