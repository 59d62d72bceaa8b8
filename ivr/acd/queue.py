"""A queue: its settings, strategy, members and the line of waiting callers.

The line is a sorted list of ``(entry.key, call_id)``: higher priority first, then earlier
enter time, then arrival number, so an entry re-inserted after a ring-no-answer goes back to
its old place. Positions are 1-based.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import QueueConfig
from .model import Agent, AgentState, QueueEntry
from .strategies import Strategy

Key = tuple[int, float, int]
_STAFFED = (AgentState.READY, AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)


@dataclass(eq=False)
class Queue:
    name: str
    cfg: QueueConfig
    strategy: Strategy
    members: list[str] = field(default_factory=list)
    ready: set[str] = field(default_factory=set)  # members in READY
    waiting: list[tuple[Key, str]] = field(default_factory=list)
    size: int = 0  # entries waiting or ringing (max_size counts these)
    handled: int = 0
    handle_total_s: float = 0.0  # talk + wrapup_s of the calls handled

    def insert(self, entry: QueueEntry) -> int:
        item = (entry.key, entry.call_id)
        i = bisect.bisect_left(self.waiting, item)
        self.waiting.insert(i, item)
        return i + 1

    def remove(self, entry: QueueEntry) -> int:
        i = bisect.bisect_left(self.waiting, (entry.key, entry.call_id))
        del self.waiting[i]
        return i + 1

    def position(self, entry: QueueEntry) -> int:
        return bisect.bisect_left(self.waiting, (entry.key, "")) + 1

    def logged_in(self, agents: Mapping[str, Agent]) -> bool:
        return any(agents[a].state is not AgentState.LOGGED_OUT for a in self.members)

    def estimate_s(self, position: int, agents: Mapping[str, Agent]) -> int:
        """Position x average handle time / agents signed in and not paused (at least 1)."""
        handle_s = (self.handle_total_s / self.handled if self.handled
                    else self.cfg.expected_handle_s)
        staffed = sum(agents[a].state in _STAFFED for a in self.members)
        return int(position * handle_s / max(1, staffed))

    def eligible(self, entry: QueueEntry, agents: Mapping[str, Agent],
                 now: float) -> list[Agent]:
        """Ready members who may take ``entry`` now (proficiency at least the floor its wait
        allows, in the queue and each required skill); those who missed it are passed over
        until everyone has."""
        floor = self.cfg.skills.min_at(now - entry.wait_start)
        if entry.not_before is not None and now < entry.not_before:
            return []  # a callback waiting for its retry time or the calling hours
        if (entry.only_agent and now < entry.only_until
                and entry.only_agent not in entry.tried):
            # own agent: the one who last served this number, alone, for own_agent_s
            return [agents[entry.only_agent]] if entry.only_agent in self.ready else []
        out = []
        for agent_id in self.ready:
            agent = agents[agent_id]
            if agent.queues[self.name] < floor:
                continue
            if all(agent.proficiency(s) >= floor for s in entry.skills):
                out.append(agent)
        fresh = [a for a in out if a.agent_id not in entry.tried]
        if out and not fresh:
            entry.tried.clear()  # everyone has missed it once: start over
            return out
        return fresh

    def first_takeable(self, entries: Mapping[str, QueueEntry], agents: Mapping[str, Agent],
                       now: float, before: Key | None
                       ) -> tuple[Key, QueueEntry, list[Agent]] | None:
        """The first waiting entry (ahead of ``before``) a ready agent may take."""
        if not self.ready:
            return None
        for key, call_id in self.waiting:
            if before is not None and key >= before:
                return None
            entry = entries[call_id]
            chosen = self.eligible(entry, agents, now)
            if chosen:
                return key, entry, chosen
        return None
