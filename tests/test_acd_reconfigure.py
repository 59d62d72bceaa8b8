"""A new ACD file swapped into a running ACD: all or nothing; callers keep their places."""

from __future__ import annotations

import pytest

from ivr.acd import AcdConfig, AcdError, AgentState
from ivr.acd import events as ev

from .acd_util import make_acd, of, offered_to, ready


def _cfg(queues: dict[str, dict[str, object]], agents: dict[str, dict[str, int]]) -> AcdConfig:
    return AcdConfig.model_validate({"queues": queues, "agents": {
        a: {"name": a, "queues": q} for a, q in agents.items()}})


def test_a_new_agent_and_strategy_take_effect_and_callers_keep_their_order() -> None:
    acd = make_acd({"sales": {}}, {"a1": {"queues": {"sales": 5}}})
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    acd.handle(ev.CallQueued("c2", "sales"), 1.0)
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 1.0)
    out = acd.reconfigure(_cfg({"sales": {"strategy": "linear"}, "billing": {}},
                               {"a1": {"sales": 5}, "a2": {"sales": 3, "billing": 2}}), 2.0)
    assert out == []
    assert [e.call_id for e in acd.waiting("sales")] == ["c1", "c2"]
    assert acd.agents["a1"].state is AgentState.NOT_READY  # states are kept
    assert acd.queues["sales"].strategy.name == "linear"
    out = ready(acd, "a2", now=3.0)
    assert [o.call_id for o in of(out, ev.OfferAgent)] == ["c1"]


def test_removing_a_busy_agent_or_a_queue_with_callers_changes_nothing() -> None:
    acd = make_acd({"sales": {}, "support": {}}, {"a1": {"queues": {"sales": 5}},
                                                  "a2": {"queues": {"support": 5}}})
    ready(acd, "a1")
    assert offered_to(acd.handle(ev.CallQueued("c1", "sales"), 0.0)) == ["a1"]
    acd.handle(ev.CallQueued("c2", "support"), 0.0)
    with pytest.raises(AcdError) as info:
        acd.reconfigure(_cfg({"sales": {}}, {"a2": {"sales": 5}}), 1.0)
    msg = str(info.value)
    assert "queue 'support' has callers" in msg
    assert "agent a1 is reserved: sign them out before removing them" in msg
    assert set(acd.queues) == {"sales", "support"} and set(acd.agents) == {"a1", "a2"}
    assert acd.agents["a2"].queues == {"support": 5}
