"""Blind transfers and call segments, on top of the queue core (``core.Acd``).

A call's *segments*: one per agent who talked to the caller, each with exactly one agent
and exactly one end (``SegmentStarted`` / ``SegmentEnded``). An agent's wrap-up starts when
their segment ends, that is when they leave the call, not when the caller hangs up.

A blind transfer (``TransferRequested``) is checked in full first (target, state, dial
plan) and refused with ``TransferRefused`` naming the reason, nothing changed. Then the
agent leaves at once (BLINDTRANSFER row with their talk time, wrap-up) and the caller::

    agent:ID     rings that (ready) agent, music meanwhile; no answer: back in the
                 queue at the caller's old place (original enter time), never dropped
    queue:NAME   leaves this queue (EXITTRANSFER) and joins NAME: placed by the original
                 enter time, a new wait for service level, max_wait_s and widening
    flow:NODE    leaves the queue for that flow node (an ``Overflow`` with reason transfer)
    tel:NUMBER   leaves the queue; the worker dials the number (``DialOut``) if the ACD
                 file's dial plan allows it

Consults and conferences are in ``consult.py``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from . import events as ev
from . import transfer_events as tx
from .config import AcdConfig
from .core import Acd as QueueAcd
from .dialplan import DialPlan
from .model import Agent, AgentState, EntryState, InvalidStateError, Outcome, QueueEntry
from .queue_log import QueueEvent
from .state import AcdError

TARGET_KINDS = ("agent", "queue", "flow", "tel")
_QUEUE_TIMERS = frozenset({"max_wait", "widen", "announce"})


class TransferRefused(AcdError):
    """The transfer target cannot be taken (unknown, not ready, not allowed): nothing
    changed; the message says why."""


@dataclass(frozen=True)
class Target:
    kind: str  # agent, queue, flow, tel
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def parse_target(text: str) -> Target:
    kind, sep, value = text.partition(":")
    if not sep or kind not in TARGET_KINDS or not value.strip():
        raise TransferRefused(f"transfer target {text!r} is not agent:ID, queue:NAME, "
                              "flow:NODE or tel:NUMBER")
    return Target(kind, value.strip())


class TransferringAcd(QueueAcd):
    def __init__(self, config: AcdConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.dialplan = DialPlan(config.dialplan)
        self.flow_nodes: frozenset[str] | None = None  # set by the service: flow: targets
        self.served: set[str] = set()  # calls that have had an agent in their current queue

    def reconfigure(self, config: AcdConfig, now: float) -> list[ev.Action]:
        out = super().reconfigure(config, now)  # AcdError: nothing changed
        self.dialplan = DialPlan(config.dialplan)
        return out

    # ---- segments -------------------------------------------------------------------

    def _on_OfferAnswered(self, e: ev.OfferAnswered, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        again = offer is not None and offer.call_id in self.served
        start = len(self._out)
        super()._on_OfferAnswered(e, now)
        if offer is None or offer.call_id not in self.entries:
            return
        entry = self.entries[offer.call_id]
        if entry.state is not EntryState.CONNECTED or entry.agent_id != offer.agent_id:
            return
        if again:  # a transferred call answered again in the same queue: no new answer
            for i in range(start, len(self._out)):
                action = self._out[i]
                if (isinstance(action, ev.LogQueueEvent)
                        and action.row.event is QueueEvent.CONNECT):
                    self._out[i] = ev.LogQueueEvent(action.row._replace(reason="transfer"))
        self._segment_start(entry, offer.agent_id, now)

    def _segment_start(self, entry: QueueEntry, agent_id: str, now: float) -> None:
        self.served.add(entry.call_id)
        self._out.append(tx.SegmentStarted(entry.call_id, agent_id, entry.queue, now))

    def _complete(self, entry: QueueEntry, now: float, event: QueueEvent,
                  outcome: Outcome) -> None:
        self._out.append(tx.SegmentEnded(entry.call_id, entry.agent_id or "", entry.queue,
                                         entry.connected_at or now, now, outcome.value))
        self.served.discard(entry.call_id)
        super()._complete(entry, now, event, outcome)

    def _wrap(self, agent: Agent, call_id: str, queue_name: str, started_at: float,
              now: float, end: str) -> None:
        """``agent`` leaves a call they talked on: their segment ends, wrap-up starts."""
        talk_s = now - started_at
        self._out.append(tx.SegmentEnded(call_id, agent.agent_id, queue_name, started_at,
                                         now, end))
        queue = self.queues[queue_name]
        agent.calls_handled += 1
        agent.talk_time_s += talk_s
        agent.call_id, agent.call_queue = call_id, queue_name
        agent.last_call_id, agent.last_call_queue = call_id, queue_name
        queue.handled += 1
        queue.handle_total_s += talk_s + queue.cfg.wrapup_s
        self._move(agent, AgentState.WRAP_UP, now, call_id=call_id, queue=queue_name)
        coded = agent.coded_call_id == call_id
        if queue.cfg.wrapup_s and not (coded and queue.cfg.wrapup_ends_on_code):
            agent.wrapup_until = now + queue.cfg.wrapup_s
            self._timer(agent.wrapup_until, "wrapup", agent.agent_id)
        else:
            self._end_wrapup(agent, now)

    def _agent_leaves(self, entry: QueueEntry, now: float, release: bool = True) -> Agent:
        """The call's agent leaves it (a transfer): segment end, wrap-up, leg released.
        The entry still names them; the caller decides what becomes of it."""
        self._on_CallResumed(ev.CallResumed(entry.call_id), now)  # closes a hold
        agent = self.agents[entry.agent_id or ""]
        if release:
            self._out.append(tx.ReleaseAgent(entry.call_id, agent.agent_id, "transferred"))
        self._wrap(agent, entry.call_id, entry.queue, entry.connected_at or now, now,
                   "transferred")
        return agent

    # ---- callers who leave after an agent had them ----------------------------------

    def _on_CallerHungUp(self, e: ev.CallerHungUp, now: float) -> None:
        if not self._gone_after_transfer(e.call_id, now, "caller-gone"):
            super()._on_CallerHungUp(e, now)

    def _on_CallLost(self, e: ev.CallLost, now: float) -> None:
        if not self._gone_after_transfer(e.call_id, now, "lost"):
            super()._on_CallLost(e, now)

    def _gone_after_transfer(self, call_id: str, now: float, why: str) -> bool:
        """A caller transferred to an agent leaves while that agent rings or after the
        call went back to the queue: it was answered here, so no abandon."""
        entry = self.entries.get(call_id)
        if entry is None or entry.state is EntryState.CONNECTED or call_id not in self.served:
            return False
        position = self._leave(entry, now, "caller-gone")
        self.queues[entry.queue].size -= 1  # _end keeps the size of completed calls
        self.served.discard(call_id)
        self._end(entry, Outcome.COMPLETED_CALLER, now, QueueEvent.COMPLETECALLER,
                  talk_s=0.0, position=position, reason=f"after-transfer {why}")
        return True

    # ---- blind transfer -------------------------------------------------------------

    def _connected_call(self, call_id: str, by: str) -> tuple[QueueEntry, Agent]:
        entry = self.entries.get(call_id)
        if entry is None:
            raise AcdError(f"no call {call_id!r} in the ACD")
        if entry.state is not EntryState.CONNECTED or entry.agent_id is None:
            raise InvalidStateError(f"call {call_id} is {entry.state.value}: no agent has "
                                    "it to transfer")
        if by and by != entry.agent_id:
            raise AcdError(f"agent {by} does not have call {call_id} (agent "
                           f"{entry.agent_id} has)")
        return entry, self.agents[entry.agent_id]

    def _ready_agent(self, agent_id: str, caller_agent: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise TransferRefused(f"no agent {agent_id!r} in the ACD file")
        if agent_id == caller_agent:
            raise TransferRefused(f"agent {agent_id} already has this call")
        if agent.state is not AgentState.READY:
            raise TransferRefused(f"agent {agent_id} is {agent.state.value}, not ready to "
                                  "take a transfer")
        return agent

    def _check_queue(self, name: str) -> None:
        queue = self.queues.get(name)
        if queue is None:
            raise TransferRefused(f"no queue {name!r} in the ACD file (queues: "
                                  f"{', '.join(self.queues)})")
        cfg = queue.cfg
        if cfg.max_size is not None and queue.size >= cfg.max_size:
            raise TransferRefused(f"queue {name} is full ({cfg.max_size} callers)")
        if cfg.when_no_agents == "overflow" and not queue.logged_in(self.agents):
            raise TransferRefused(f"nobody is signed in to queue {name}")

    def _check_target(self, target: Target, agent: Agent) -> Agent | str | None:
        """The agent to ring, the dialled number, or None; TransferRefused if not allowed."""
        if target.kind == "agent":
            return self._ready_agent(target.value, agent.agent_id)
        if target.kind == "queue":
            self._check_queue(target.value)
        elif target.kind == "flow":
            if self.flow_nodes is not None and target.value not in self.flow_nodes:
                raise TransferRefused(f"no node {target.value!r} in the flow")
        else:
            try:
                return self.dialplan.check(target.value)
            except ValueError as exc:
                raise TransferRefused(str(exc)) from None
        return None

    def _on_TransferRequested(self, e: tx.TransferRequested, now: float) -> None:
        entry, agent = self._connected_call(e.call_id, e.by)
        self._before_transfer(entry)
        target = parse_target(e.to)
        checked = self._check_target(target, agent)
        to_agent = checked if isinstance(checked, Agent) else None
        self._log(now, QueueEvent.BLINDTRANSFER, call_id=entry.call_id, queue=entry.queue,
                  agent_id=agent.agent_id, code=to_agent.agent_id if to_agent else "",
                  reason=e.to, wait_s=(entry.connected_at or now) - entry.enter_at,
                  talk_s=now - (entry.connected_at or now))
        self._out.append(tx.CallTransferred(entry.call_id, agent.agent_id, e.to, "blind"))
        self._send_on(entry, target, checked, now)

    def _before_transfer(self, entry: QueueEntry) -> None:
        """Hook: consult.py refuses a blind transfer during a consult."""

    def _send_on(self, entry: QueueEntry, target: Target, checked: Agent | str | None,
                 now: float, release: bool = True) -> None:
        """The agent leaves and the caller goes to the checked ``target``."""
        self._agent_leaves(entry, now, release)
        if isinstance(checked, Agent):
            entry.agent_id, entry.connected_at = None, None
            entry._set_state(EntryState.OFFERED)
            self.queues[entry.queue].size += 1  # ringing again
            self._offer(entry, checked, now)
            return
        self.queues[entry.queue].size += 1  # _end takes one off; a connected call has none
        self._end(entry, Outcome.TRANSFERRED, now, QueueEvent.EXITTRANSFER,
                  reason=str(target), talk_s=now - (entry.connected_at or now))
        self.served.discard(entry.call_id)
        if target.kind == "queue":
            self._enter_by_transfer(entry, target.value, now)
        elif target.kind == "flow":
            self._out.append(ev.Overflow(entry.call_id, entry.queue, "transfer",
                                         target.value))
        else:
            self._out.append(tx.DialOut(entry.call_id, str(checked), self._last_by(entry)))

    def _last_by(self, entry: QueueEntry) -> str:
        for action in reversed(self._out):
            if isinstance(action, tx.CallTransferred) and action.call_id == entry.call_id:
                return action.by
        return ""

    def _enter_by_transfer(self, old: QueueEntry, name: str, now: float) -> None:
        """The caller joins queue ``name``: placed by their first enter time, a new wait."""
        self._timers = [t for t in self._timers
                        if not (t[3] == old.call_id and t[2] in _QUEUE_TIMERS)]
        heapq.heapify(self._timers)
        entry = QueueEntry(old.call_id, name, old.priority, old.enter_at, self._next(),
                           old.skills, old.caller, wait_from=now)
        self.entries[entry.call_id] = entry
        queue = self.queues[name]
        queue.size += 1
        entry.enter_position = self._insert(entry)
        self._log(now, QueueEvent.ENTERQUEUE, call_id=entry.call_id, queue=name,
                  position=entry.enter_position, priority=entry.priority, reason=entry.caller,
                  code="transfer", note=old.queue, wait_s=now - entry.enter_at)
        cfg = queue.cfg
        if cfg.max_wait_s is not None:
            self._timer(now + cfg.max_wait_s, "max_wait", entry.call_id)
        for rule in cfg.skills.widen:
            self._timer(now + rule.after_s, "widen", entry.call_id)
        if cfg.announce_every_s:
            self._timer(now + cfg.announce_every_s, "announce", entry.call_id)
        self._out.append(ev.RequeueCall(entry.call_id, name, entry.enter_position))
