"""When the pool shrinks: which idle workers to retire (pure; ``now`` is passed in).

The pool grows by ``pool.min_idle_workers`` whenever calls take its idle workers; without
this it would never shrink, and every idle worker costs CPU (its PJSIP endpoint polls).
A worker idle for ``pool.idle_retire_s`` is retired (drained; its slot left empty) as long
as the pool keeps

- at least ``pool.workers`` workers: the size the stack starts with is its floor, so a
  stack that was idle answers the first calls of a burst as it did at start;
- at least ``pool.min_idle_workers`` idle workers: the headroom for a burst.

Workers in the highest slots go first, so the pool shrinks back to its first slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotLoad:
    slot: int
    serving: bool  # up and taking calls (starting workers count as live, not as retirable)
    legs: int
    idle_since: float | None  # monotonic time it last had no call, None while it has one


def to_retire(slots: Sequence[SlotLoad], now: float, *, floor_workers: int,
              min_idle_workers: int, idle_retire_s: float) -> list[int]:
    """The slots whose workers should be retired now (``idle_retire_s`` 0: never)."""
    if idle_retire_s <= 0:
        return []
    live = len(slots)
    idle = sum(1 for x in slots if x.legs == 0)
    ready = sorted((x for x in slots if x.serving and x.legs == 0
                    and x.idle_since is not None and now - x.idle_since >= idle_retire_s),
                   key=lambda x: x.slot, reverse=True)
    out: list[int] = []
    for x in ready:
        if live - 1 < floor_workers or idle - 1 < min_idle_workers:
            break
        out.append(x.slot)
        live -= 1
        idle -= 1
    return out
