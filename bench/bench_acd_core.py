"""The ACD core alone: routing decisions per second with 1,000 agents and 5,000 waiting calls.

    .venv/bin/python bench/bench_acd_core.py [--agents 1000] [--waiting 5000] [--decisions 20000]

Steady state: every agent is on a call or being rung, 5,000 callers wait over 5 queues (each
agent serves 2). Each cycle an answered call ends (wrap-up 0 s), so the agent is free, the
core picks the next caller and rings the agent (one decision), the ring is answered, and a new
caller joins so that the line stays 5,000 long. Printed per strategy: decisions/s (the goal
is >= 10,000/s) and core events handled/s. CPU-bound pure Python: no I/O, no clock inside
the core; timed in CPU seconds of this process (the machine is shared), best of --runs.
"""

from __future__ import annotations

import argparse
import time

from ivr.acd import Acd, AcdConfig
from ivr.acd import events as ev

QUEUES = [f"q{i}" for i in range(5)]


def build(strategy: str, agents: int) -> Acd:
    q = {"strategy": strategy, "wrapup_s": 0, "announce_every_s": 0, "ring_timeout_s": 30}
    cfg = AcdConfig.model_validate({
        "queues": {name: q for name in QUEUES},
        "agents": {f"a{i}": {"name": f"agent {i}", "queues": {
            QUEUES[i % 5]: 1 + i % 10, QUEUES[(i + 1) % 5]: 1 + (i * 7) % 10}}
            for i in range(agents)}})
    return Acd(cfg, seed=1)


def run(strategy: str, agents: int, waiting: int, decisions: int) -> tuple[float, float]:
    acd = build(strategy, agents)
    now = 0.0
    n = 0
    for _ in range(waiting + agents):
        n += 1
        acd.handle(ev.CallQueued(f"c{n}", QUEUES[n % 5], priority=n % 3), now)
    ringing: list[str] = []
    for i in range(agents):
        out = acd.handle(ev.AgentStateRequested(f"a{i}", "ready"), now)
        ringing += [a.offer_id for a in out if isinstance(a, ev.OfferAgent)]
    talking: list[str] = []
    for offer_id in ringing:
        for a in acd.handle(ev.OfferAnswered(offer_id), now):
            if isinstance(a, ev.CallConnected):
                talking.append(a.call_id)
    made = handled = 0
    start = time.process_time()
    while made < decisions:
        now += 0.01
        call_id = talking.pop(0)
        out = acd.handle(ev.CallerHungUp(call_id), now)
        n += 1
        out += acd.handle(ev.CallQueued(f"c{n}", QUEUES[n % 5], priority=n % 3), now)
        handled += 2
        for a in out:
            if isinstance(a, ev.OfferAgent):
                made += 1
                handled += 1
                for b in acd.handle(ev.OfferAnswered(a.offer_id), now):
                    if isinstance(b, ev.CallConnected):
                        talking.append(b.call_id)
    elapsed = time.process_time() - start
    assert sum(len(q.waiting) for q in acd.queues.values()) >= waiting - agents
    return made / elapsed, handled / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=5000)
    ap.add_argument("--decisions", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--strategies", default="longest-idle,skills,round-robin,fewest-calls")
    args = ap.parse_args()
    print(f"ACD core: {args.agents} agents, {args.waiting} waiting calls over "
          f"{len(QUEUES)} queues, {args.decisions} decisions per strategy")
    for strategy in args.strategies.split(","):
        per_s, events_s = max(run(strategy, args.agents, args.waiting, args.decisions)
                              for _ in range(args.runs))
        print(f"  {strategy:16} {per_s:10,.0f} decisions/s   {events_s:10,.0f} events/s"
              f"   (goal >= 10,000 decisions/s: {'met' if per_s >= 10000 else 'NOT met'})")


if __name__ == "__main__":
    main()
