"""Routing strategies: which ready agent(s) a waiting call rings. A small base class and a
registry keyed by the name a queue's ``strategy`` gives. One instance per queue, so a
strategy with memory (round-robin) remembers per queue.

The core hands a strategy only agents that may take the call (ready, members of the queue,
holding the entry's skills at the proficiency the wait allows) and rings what it returns:
one agent, or every one for ``ring-all``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .model import Agent, QueueEntry


@dataclass(frozen=True)
class Context:
    queue: str
    now: float
    rng: random.Random


class Strategy:
    name: ClassVar[str]
    rings_all: ClassVar[bool] = False

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        """The agents to ring, from the non-empty ``agents``."""
        raise NotImplementedError


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def make_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}") from None


def _best(agents: Sequence[Agent], key: Callable[[Agent], tuple[float, ...]]) -> list[Agent]:
    return [min(agents, key=key)]


@register
class LongestIdle(Strategy):
    """The agent idle longest (since their last wrap-up ended or they signed in)."""

    name = "longest-idle"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        return _best(agents, lambda a: (a.idle_since, a.order))


@register
class RoundRobin(Strategy):
    """In configuration order, starting after the agent this queue rang last."""

    name = "round-robin"

    def __init__(self) -> None:
        self.last_order: int | None = None

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        last = -1 if self.last_order is None else self.last_order
        after = [a for a in agents if a.order > last]
        agent = min(after or agents, key=lambda a: a.order)
        self.last_order = agent.order
        return [agent]


@register
class RingAll(Strategy):
    """Every agent that may take the call at once; the first to answer wins."""

    name = "ring-all"
    rings_all = True

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        return sorted(agents, key=lambda a: a.order)


@register
class FewestCalls(Strategy):
    """The agent who has handled the fewest calls (any queue); ties: longest idle."""

    name = "fewest-calls"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        return _best(agents, lambda a: (a.calls_handled, a.idle_since, a.order))


@register
class LeastTalkTime(Strategy):
    """The agent with the least talk time so far; ties: longest idle."""

    name = "least-talk-time"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        return _best(agents, lambda a: (a.talk_time_s, a.idle_since, a.order))


@register
class RandomAgent(Strategy):
    """Any one, at random (the core seeds the generator, so tests can repeat a run)."""

    name = "random"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        ordered = sorted(agents, key=lambda a: a.order)
        return [ordered[ctx.rng.randrange(len(ordered))]]


@register
class Linear(Strategy):
    """Always the first free agent in configuration order."""

    name = "linear"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        return _best(agents, lambda a: (a.order,))


@register
class Skills(Strategy):
    """The best match: highest proficiency in the queue plus the entry's required skills;
    ties: longest idle. (Who may take the call at all, and how that widens with the wait,
    is the queue's ``skills`` setting, applied by the core for every strategy.)"""

    name = "skills"

    def choose(self, entry: QueueEntry, agents: Sequence[Agent], ctx: Context) -> list[Agent]:
        def score(a: Agent) -> tuple[float, ...]:
            total = a.queues.get(ctx.queue, 0) + sum(a.proficiency(s) for s in entry.skills)
            return (-total, a.idle_since, a.order)
        return _best(agents, score)
