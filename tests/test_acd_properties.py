"""Properties over random sequences of events: no call lost, no call given to two agents,
no agent in two calls, every queue entry ends in exactly one final queue-log row."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.acd import STRATEGIES, Acd, AgentState, EntryState
from ivr.acd import events as ev
from ivr.acd.queue_log import FINAL_EVENTS, QueueEvent

from .acd_util import make_acd, rows

AGENTS = ["a1", "a2", "a3", "a4"]
QUEUES = ["q1", "q2"]
# weighted: calls and ready agents often enough that rings, answers and races happen
OPS = ["queue"] * 3 + ["agent_state"] * 3 + ["answer"] * 3 + ["tick"] * 2 + [
    "hangup", "fail", "agent_hangup", "code", "key", "hold"]


def _acd(strategy: str, seed: int) -> Acd:
    q = {"ring_timeout_s": 10, "wrapup_s": 5, "autopause_after": 2, "announce_every_s": 7,
         "max_wait_s": 90, "max_size": 6, "strategy": strategy}
    return make_acd(
        {"q1": q, "q2": {**q, "when_no_agents": "overflow", "skills": {
            "min_proficiency": 5, "widen": [{"after_s": 20, "min_proficiency": 1}]}}},
        {"a1": {"queues": {"q1": 5}}, "a2": {"queues": {"q1": 3, "q2": 8}},
         "a3": {"queues": {"q2": 2}, "skills": {"fr": 6}}, "a4": {"queues": {"q1": 9, "q2": 4}}},
        seed=seed, call_reasons={"done": "Done"})


def _check(acd: Acd, connected: Counter[str], finals: Counter[str],
           queued: set[str]) -> None:
    # no agent in two calls, and an agent's state matches the offers and calls
    ringing = Counter(o.agent_id for o in acd.offers.values())
    talking = Counter(e.agent_id for e in acd.entries.values()
                      if e.state is EntryState.CONNECTED)
    for agent in acd.agents.values():
        assert ringing[agent.agent_id] == (agent.state is AgentState.RESERVED)
        assert talking[agent.agent_id] == (agent.state is AgentState.ON_CALL)
    # no call given to two agents
    assert all(n == 1 for n in connected.values())
    # every entry ends at most once, and no call is lost
    assert all(n == 1 for n in finals.values())
    for call_id in queued:
        assert (call_id in acd.entries) != (call_id in finals), call_id
    for name, queue in acd.queues.items():
        waiting = {cid for _, cid in queue.waiting}
        for entry in acd.entries.values():
            if entry.queue == name:
                assert (entry.call_id in waiting) == (entry.state is EntryState.WAITING)
                assert bool(entry.offers) == (entry.state is EntryState.OFFERED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=st.sampled_from(sorted(STRATEGIES)), seed=st.integers(0, 1000),
       steps=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50),
                                st.floats(0, 15)), min_size=20, max_size=150))
def test_random_event_sequences_keep_every_promise(
        strategy: str, seed: int, steps: list[tuple[str, int, float]]) -> None:
    acd = _acd(strategy, seed)
    now = 0.0
    connected: Counter[str] = Counter()
    finals: Counter[str] = Counter()
    queued: set[str] = set()
    n = 0
    for agent_id in AGENTS[:3]:
        acd.handle(ev.AgentStateRequested(agent_id, "ready"), now)

    def apply(out: list[ev.Action]) -> None:
        for action in out:
            if isinstance(action, ev.CallConnected):
                connected[action.call_id] += 1
            elif isinstance(action, ev.LogQueueEvent):
                row = action.row
                if row.event in FINAL_EVENTS:
                    finals[row.call_id] += 1
                if row.event is QueueEvent.ENTERQUEUE:
                    queued.add(row.call_id)
            elif isinstance(action, ev.OfferAgent):
                assert acd.agents[action.agent_id].state is AgentState.RESERVED

    for op, i, dt in steps:
        now += dt
        live = sorted(acd.entries)
        pick = live[i % len(live)] if live else None
        offers = sorted(acd.offers)
        talking = sorted(c for c, e in acd.entries.items() if e.state is EntryState.CONNECTED)
        if op == "queue":
            n += 1
            skills = ("fr",) if i % 5 == 0 else ()
            apply(acd.handle(ev.CallQueued(f"c{n}", QUEUES[i % 2], priority=i % 3,
                                           skills=skills), now))
        elif op == "hangup" and pick:
            # a caller hanging up, or its worker dying
            apply(acd.handle(ev.CallerHungUp(pick) if i % 4 else ev.CallLost(pick), now))
        elif op == "key" and pick and acd.entries[pick].state is not EntryState.CONNECTED:
            apply(acd.handle(ev.CallerLeftWithKey(pick, "0"), now))
        elif op == "agent_state":
            state = ["ready", "ready", "ready", "not_ready", "logged_out"][i % 5]
            apply(acd.handle(ev.AgentStateRequested(AGENTS[i % 4], state,
                                                    "break" if state == "not_ready" else ""),
                             now))
        elif op == "answer" and offers:
            apply(acd.handle(ev.OfferAnswered(offers[i % len(offers)]), now))
        elif op == "fail" and offers:
            apply(acd.handle(ev.OfferFailed(offers[i % len(offers)],
                                            ["no_answer", "rejected", "error"][i % 3]), now))
        elif op == "agent_hangup" and talking:
            apply(acd.handle(ev.AgentHungUp(talking[i % len(talking)]), now))
        elif op == "hold" and talking:
            call = talking[i % len(talking)]
            apply(acd.handle(ev.CallHeld(call) if i % 2 else ev.CallResumed(call), now))
        elif op == "code":
            agent = acd.agents[AGENTS[i % 4]]
            if agent.state is AgentState.WRAP_UP and agent.coded_call_id != agent.last_call_id:
                apply(acd.handle(ev.WrapUpCoded(agent.agent_id, "done"), now))
        else:
            apply(acd.tick(now))
        _check(acd, connected, finals, queued)
    # everyone hangs up: every call that entered a queue has exactly one final row
    for call_id in sorted(acd.entries):
        apply(acd.handle(ev.CallerHungUp(call_id), now))
    apply(acd.tick(now + 1000))
    _check(acd, connected, finals, queued)
    assert not acd.entries and not acd.offers
    assert set(finals) >= queued and all(finals[c] == 1 for c in queued)
    assert all(a.state in (AgentState.READY, AgentState.NOT_READY, AgentState.LOGGED_OUT)
               for a in acd.agents.values())


def test_a_late_answer_from_a_ring_all_loser_changes_nothing() -> None:
    acd = _acd("ring-all", 0)
    for a in AGENTS:
        acd.handle(ev.AgentStateRequested(a, "ready"), 0.0)
    out = acd.handle(ev.CallQueued("c1", "q1"), 1.0)
    offers = [o.offer_id for o in out if isinstance(o, ev.OfferAgent)]
    assert len(offers) == 3  # a1, a2, a4 serve q1
    first = acd.handle(ev.OfferAnswered(offers[0]), 2.0)
    second = acd.handle(ev.OfferAnswered(offers[1]), 2.0)
    assert sum(isinstance(a, ev.CallConnected) for a in first + second) == 1
    assert rows(second) == []
