"""Each routing strategy picks the agent its name promises."""

from __future__ import annotations

import random

import pytest

from ivr.acd import STRATEGIES, Agent, QueueEntry
from ivr.acd import events as ev
from ivr.acd.strategies import Context, make_strategy

from .acd_util import make_acd, offered_to, ready


def _agents() -> list[Agent]:
    #            id    order idle_since calls talk_s  proficiency
    table = [("a", 0, 50.0, 3, 100.0, 4),
             ("b", 1, 10.0, 5, 900.0, 6),
             ("c", 2, 30.0, 1, 400.0, 9)]
    return [Agent(i, queues={"q": p}, order=o, idle_since=idle, calls_handled=n,
                  talk_time_s=t) for i, o, idle, n, t, p in table]


ENTRY = QueueEntry("c1", "q", 0, 0.0, 1)
CTX = Context("q", 100.0, random.Random(0))


@pytest.mark.parametrize("name, expected", [
    ("longest-idle", ["b"]),
    ("fewest-calls", ["c"]),
    ("least-talk-time", ["a"]),
    ("linear", ["a"]),
    ("skills", ["c"]),
    ("ring-all", ["a", "b", "c"]),
])
def test_strategy_picks(name: str, expected: list[str]) -> None:
    chosen = make_strategy(name).choose(ENTRY, _agents(), CTX)
    assert [a.agent_id for a in chosen] == expected


def test_round_robin_remembers_where_it_stopped() -> None:
    rr = make_strategy("round-robin")
    agents = _agents()
    picks = [rr.choose(ENTRY, agents, CTX)[0].agent_id for _ in range(4)]
    assert picks == ["a", "b", "c", "a"]
    assert rr.choose(ENTRY, [agents[0], agents[2]], CTX)[0].agent_id == "c"  # b busy


def test_random_is_repeatable_with_the_same_seed_and_uses_everyone() -> None:
    def run(seed: int) -> list[str]:
        ctx = Context("q", 0.0, random.Random(seed))
        s = make_strategy("random")
        return [s.choose(ENTRY, _agents(), ctx)[0].agent_id for _ in range(30)]
    assert run(7) == run(7)
    assert set(run(7)) == {"a", "b", "c"}


def test_every_strategy_is_registered_by_name() -> None:
    assert set(STRATEGIES) == {"longest-idle", "round-robin", "ring-all", "fewest-calls",
                               "least-talk-time", "random", "linear", "skills"}
    with pytest.raises(ValueError, match="unknown strategy 'fifo'"):
        make_strategy("fifo")


def test_longest_idle_through_the_core_prefers_the_agent_free_longest() -> None:
    acd = make_acd({"q": {}}, {"a1": {"queues": {"q": 5}}, "a2": {"queues": {"q": 5}}})
    ready(acd, "a2", now=0.0)
    ready(acd, "a1", now=5.0)
    assert offered_to(acd.handle(ev.CallQueued("c1", "q"), 10.0)) == ["a2"]


def test_fewest_calls_through_the_core_counts_handled_calls() -> None:
    acd = make_acd({"q": {"strategy": "fewest-calls", "wrapup_s": 0}},
                   {"a1": {"queues": {"q": 5}}, "a2": {"queues": {"q": 5}}})
    ready(acd, "a1", "a2")
    for i in range(2):
        out = acd.handle(ev.CallQueued(f"c{i}", "q"), float(i))
        offer = [o for o in out if isinstance(o, ev.OfferAgent)][0]
        acd.handle(ev.OfferAnswered(offer.offer_id), float(i))
        acd.handle(ev.CallerHungUp(f"c{i}"), float(i) + 0.5)
    calls = {a: acd.agents[a].calls_handled for a in ("a1", "a2")}
    assert calls == {"a1": 1, "a2": 1}  # one each, not both to the same agent
