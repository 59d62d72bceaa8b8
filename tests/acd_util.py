"""Helpers for the ACD core tests: build an ACD from plain dicts, drive it, read actions."""

from __future__ import annotations

from typing import Any, TypeVar

from ivr.acd import Acd, AcdConfig
from ivr.acd import events as ev
from ivr.acd.queue_log import QueueEvent, QueueLogRow

T = TypeVar("T")


def make_acd(queues: dict[str, dict[str, Any]], agents: dict[str, dict[str, Any]],
             seed: int = 0, **extra: Any) -> Acd:
    cfg = AcdConfig.model_validate({"queues": queues, "agents": {
        a: {"name": a, **spec} for a, spec in agents.items()}, **extra})
    return Acd(cfg, seed=seed)


def of(actions: list[ev.Action], kind: type[T]) -> list[T]:
    return [a for a in actions if isinstance(a, kind)]


def rows(actions: list[ev.Action]) -> list[QueueLogRow]:
    return [a.row for a in actions if isinstance(a, ev.LogQueueEvent)]


def names(actions: list[ev.Action]) -> list[str]:
    return [r.event.value for r in rows(actions)
            if r.event not in (QueueEvent.AGENTSTATE, QueueEvent.PAUSE, QueueEvent.UNPAUSE,
                               QueueEvent.AGENTLOGIN, QueueEvent.AGENTLOGOFF)]


def ready(acd: Acd, *agent_ids: str, now: float = 0.0) -> list[ev.Action]:
    out: list[ev.Action] = []
    for a in agent_ids:
        out += acd.handle(ev.AgentStateRequested(a, "ready"), now)
    return out


def offered_to(actions: list[ev.Action]) -> list[str]:
    return [o.agent_id for o in of(actions, ev.OfferAgent)]
