"""The agent, queue entry and offer state machines refuse moves their diagrams lack."""

from __future__ import annotations

import pytest

from ivr.acd import (
    Agent,
    AgentState,
    EntryState,
    InvalidStateError,
    Offer,
    OfferState,
    Outcome,
    QueueEntry,
)


def test_an_agent_cannot_go_from_on_call_to_ready_without_wrap_up() -> None:
    agent = Agent("1001", state=AgentState.ON_CALL)
    with pytest.raises(InvalidStateError, match="agent 1001: cannot go from on_call to ready"):
        agent._set_state(AgentState.READY, 1.0)
    assert agent._set_state(AgentState.WRAP_UP, 2.0) is AgentState.ON_CALL
    assert (agent.state, agent.state_since) == (AgentState.WRAP_UP, 2.0)


def test_a_logged_out_agent_cannot_be_rung() -> None:
    with pytest.raises(InvalidStateError, match="logged_out to reserved"):
        Agent("1")._set_state(AgentState.RESERVED, 0.0)


def test_not_ready_keeps_its_reason_and_ready_clears_it() -> None:
    agent = Agent("1")
    agent._set_state(AgentState.NOT_READY, 0.0, "lunch")
    assert agent.reason == "lunch"
    agent._set_state(AgentState.READY, 1.0)
    assert agent.reason == ""


def test_an_entry_ends_once_with_one_outcome() -> None:
    entry = QueueEntry("c1", "sales", 0, 10.0, 1)
    with pytest.raises(InvalidStateError, match="outcome goes with ENDED"):
        entry._set_state(EntryState.ENDED)
    entry._set_state(EntryState.ENDED, Outcome.ABANDONED)
    with pytest.raises(InvalidStateError, match="cannot go from ended to waiting"):
        entry._set_state(EntryState.WAITING)


def test_a_requeued_entry_keeps_its_place_in_line() -> None:
    entry = QueueEntry("c1", "sales", 5, 10.0, 7)
    key = entry.key
    entry._set_state(EntryState.OFFERED)
    entry._set_state(EntryState.WAITING)
    assert entry.key == key == (-5, 10.0, 7)


def test_an_offer_ends_once() -> None:
    offer = Offer("o1", "c1", "1001", "sales", 0.0, 15.0)
    offer._set_state(OfferState.NO_ANSWER)
    with pytest.raises(InvalidStateError, match="no_answer to answered"):
        offer._set_state(OfferState.ANSWERED)
