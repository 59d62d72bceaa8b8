"""The ACD core, driven with events and a fake clock: priorities, ring-no-answer and
autopause, overflow, wrap-up across queues, agents changing state while rung, ring-all."""

from __future__ import annotations

import pytest

from ivr.acd import AcdError, AgentState, InvalidStateError
from ivr.acd import events as ev
from ivr.acd.queue_log import QueueEvent

from .acd_util import make_acd, names, of, offered_to, ready, rows

ONE = {"sales": {"wrapup_s": 10, "ring_timeout_s": 15}}


def test_a_call_rings_a_ready_agent_and_connects_on_answer() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    out = acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    assert names(out) == ["ENTERQUEUE", "RING"]
    (offer,) = of(out, ev.OfferAgent)
    assert (offer.agent_id, offer.ring_timeout_s) == ("a1", 15)
    out = acd.handle(ev.OfferAnswered(offer.offer_id), 4.0)
    assert names(out) == ["CONNECT"]
    assert rows(out)[-1].wait_s == 3.0
    assert acd.agents["a1"].state is AgentState.ON_CALL


def test_higher_priority_goes_first_and_fifo_within_a_priority() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    for i, prio in enumerate([0, 0, 5, 5, 1]):
        acd.handle(ev.CallQueued(f"c{i}", "sales", priority=prio), float(i))
    assert [e.call_id for e in acd.waiting("sales")] == ["c2", "c3", "c4", "c0", "c1"]
    out = ready(acd, "a1", now=10.0)
    assert [o.call_id for o in of(out, ev.OfferAgent)] == ["c2"]


def test_ring_no_answer_requeues_at_the_head_autopauses_and_tries_the_next_agent() -> None:
    q = {"sales": {"ring_timeout_s": 15, "autopause_after": 1}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}, "a2": {"queues": {"sales": 5}}})
    ready(acd, "a1", now=0.0)
    ready(acd, "a2", now=1.0)
    acd.handle(ev.AgentStateRequested("a2", "not_ready", "break"), 1.5)
    acd.handle(ev.CallQueued("c1", "sales"), 2.0)  # rings a1
    acd.handle(ev.CallQueued("c2", "sales"), 3.0)
    ready(acd, "a2", now=4.0)  # takes c2
    assert acd.entries["c2"].agent_id is None and acd.entries["c2"].offers
    out = acd.tick(17.0)  # a1's ring times out
    assert of(out, ev.CancelOffer)[0].reason == "no-answer"
    assert names(out) == ["RINGNOANSWER"]
    assert acd.agents["a1"].state is AgentState.NOT_READY
    assert acd.agents["a1"].reason == "no-answer"
    assert of(out, ev.RequeueCall) == [ev.RequeueCall("c1", "sales", 1)]
    entry = acd.entries["c1"]
    assert entry.enter_at == 2.0
    # a2 frees up and gets c1 (who kept the head), not a later caller
    acd.handle(ev.CallQueued("c3", "sales"), 18.0)
    acd.handle(ev.OfferFailed(acd.entries["c2"].offers[0], "rejected"), 19.0)
    # a2 autopaused too; make a2 ready: c1 comes first (entered at 2.0)
    out = ready(acd, "a2", now=20.0)
    assert [o.call_id for o in of(out, ev.OfferAgent)] == ["c1"]


def test_autopause_after_two_misses_leaves_the_first_miss_ready() -> None:
    q = {"sales": {"ring_timeout_s": 5, "autopause_after": 2}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    out = acd.tick(5.0)
    assert acd.agents["a1"].state is AgentState.RESERVED  # ready again, rung again at once
    assert offered_to(out) == ["a1"]
    acd.tick(10.0)
    assert acd.agents["a1"].state is AgentState.NOT_READY


def test_max_wait_overflows_to_the_target() -> None:
    q = {"sales": {"max_wait_s": 60, "overflow_to": "voicemail", "announce_every_s": 0}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}})
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    assert acd.tick(59.0) == []
    out = acd.tick(60.0)
    assert of(out, ev.Overflow) == [ev.Overflow("c1", "sales", "timeout", "voicemail")]
    assert names(out) == ["EXITWITHTIMEOUT"] and rows(out)[0].wait_s == 60.0
    assert "c1" not in acd.entries


def test_a_ringing_call_past_max_wait_overflows_when_the_ring_fails() -> None:
    q = {"sales": {"max_wait_s": 10, "ring_timeout_s": 20}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    assert of(acd.tick(10.0), ev.Overflow) == []  # still ringing: let it ring
    out = acd.tick(20.0)
    assert [o.reason for o in of(out, ev.Overflow)] == ["timeout"]


def test_max_size_refuses_the_extra_caller_with_one_full_row() -> None:
    acd = make_acd({"sales": {"max_size": 2}}, {"a1": {"queues": {"sales": 5}}})
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    acd.handle(ev.CallQueued("c2", "sales"), 0.0)
    out = acd.handle(ev.CallQueued("c3", "sales"), 0.0)
    assert names(out) == ["FULL"]
    assert of(out, ev.Overflow)[0].reason == "full"


def test_when_no_agents_overflow_at_join_and_when_the_last_agent_leaves() -> None:
    q = {"sales": {"when_no_agents": "overflow", "overflow_to": "voicemail"}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}})
    out = acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    assert names(out) == ["JOINEMPTY"] and of(out, ev.Overflow)[0].reason == "no-agents"
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "lunch"), 1.0)
    out = acd.handle(ev.CallQueued("c2", "sales"), 2.0)  # signed in, not ready: waits
    assert names(out) == ["ENTERQUEUE"]
    out = acd.handle(ev.AgentStateRequested("a1", "logged_out"), 3.0)
    assert "EXITEMPTY" in names(out) and of(out, ev.Overflow)[0].call_id == "c2"


def test_caller_hanging_up_while_ringing_cancels_the_offer_and_frees_the_agent() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    out = acd.handle(ev.CallerHungUp("c1"), 4.0)
    assert of(out, ev.CancelOffer)[0].reason == "caller-gone"
    assert names(out) == ["RINGCANCELED", "ABANDON"]
    assert rows(out)[-1].wait_s == 4.0
    assert acd.agents["a1"].state is AgentState.READY and acd.agents["a1"].misses == 0


def test_agent_going_not_ready_while_rung_cancels_and_the_call_goes_on() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}, "a2": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    acd.handle(ev.AgentStateRequested("a2", "ready"), 1.0)  # a2 ready: nothing to take
    out = acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 2.0)
    assert of(out, ev.CancelOffer)[0].reason == "agent-state"
    assert offered_to(out) == ["a2"]  # re-queued and given to the next agent
    assert acd.agents["a1"].state is AgentState.NOT_READY


def test_asking_for_not_ready_on_a_call_waits_for_the_end_of_wrap_up() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    offer = of(acd.handle(ev.CallQueued("c1", "sales"), 0.0), ev.OfferAgent)[0]
    acd.handle(ev.OfferAnswered(offer.offer_id), 1.0)
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "lunch"), 2.0)
    assert acd.agents["a1"].state is AgentState.ON_CALL
    acd.handle(ev.AgentHungUp("c1"), 30.0)
    assert acd.agents["a1"].state is AgentState.WRAP_UP
    acd.tick(40.0)
    assert (acd.agents["a1"].state, acd.agents["a1"].reason) == (AgentState.NOT_READY, "lunch")


def _talk(acd: object, call: str, queue: str, t0: float, t1: float) -> None:
    from ivr.acd import Acd
    assert isinstance(acd, Acd)
    offer = of(acd.handle(ev.CallQueued(call, queue), t0), ev.OfferAgent)[0]
    acd.handle(ev.OfferAnswered(offer.offer_id), t0)
    acd.handle(ev.CallerHungUp(call), t1)


def test_wrap_up_is_the_agents_own_and_another_queue_does_not_reset_it() -> None:
    q = {"sales": {"wrapup_s": 30}, "support": {"wrapup_s": 5}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5, "support": 5}}})
    ready(acd, "a1")
    _talk(acd, "c1", "sales", 0.0, 10.0)  # wrap-up until 40
    out = acd.handle(ev.CallQueued("c2", "support"), 12.0)
    assert offered_to(out) == []  # support waits: no offer to an agent in wrap-up
    assert acd.tick(39.0) == []
    out = acd.tick(40.0)
    assert offered_to(out) == ["a1"]


def test_a_wrap_up_code_ends_after_call_work_and_is_logged() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}}, call_reasons={
        "billing": {"label": "Billing", "children": {"refund": "Refund"}}})
    ready(acd, "a1")
    _talk(acd, "c1", "sales", 0.0, 10.0)
    with pytest.raises(AcdError, match="unknown wrap-up code 'refund'.*billing/refund"):
        acd.handle(ev.WrapUpCoded("a1", "refund"), 11.0)
    out = acd.handle(ev.WrapUpCoded("a1", "billing/refund", "promised in 5 days"), 12.0)
    (row,) = [r for r in rows(out) if r.event is QueueEvent.WRAPUP]
    assert (row.call_id, row.code, row.queue) == ("c1", "billing/refund", "sales")
    assert acd.agents["a1"].state is AgentState.READY


def test_ring_all_first_answer_wins_and_the_others_are_cancelled() -> None:
    q = {"sales": {"strategy": "ring-all"}}
    acd = make_acd(q, {a: {"queues": {"sales": 5}} for a in ("a1", "a2", "a3")})
    ready(acd, "a1", "a2", "a3")
    out = acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    offers = {o.agent_id: o.offer_id for o in of(out, ev.OfferAgent)}
    assert sorted(offers) == ["a1", "a2", "a3"]
    out = acd.handle(ev.OfferAnswered(offers["a2"]), 2.0)
    assert sorted(c.agent_id for c in of(out, ev.CancelOffer)) == ["a1", "a3"]
    assert {c.reason for c in of(out, ev.CancelOffer)} == {"answered-elsewhere"}
    # a3's phone answered at the same moment: it is told to hang up, nothing else changes
    out = acd.handle(ev.OfferAnswered(offers["a3"]), 2.0)
    assert [c.reason for c in of(out, ev.CancelOffer)] == ["answered-too-late"]
    assert acd.entries["c1"].agent_id == "a2"
    assert acd.agents["a3"].state is AgentState.READY


def test_an_agent_in_two_queues_is_offered_one_call_at_a_time() -> None:
    acd = make_acd({"sales": {}, "support": {}}, {"a1": {"queues": {"sales": 5, "support": 5}}})
    acd.handle(ev.CallQueued("c1", "support", priority=0), 0.0)
    acd.handle(ev.CallQueued("c2", "sales", priority=0), 1.0)
    out = ready(acd, "a1", now=2.0)
    assert [o.call_id for o in of(out, ev.OfferAgent)] == ["c1"]  # waited longest


def test_skills_widen_with_the_wait() -> None:
    q = {"support": {"strategy": "skills", "skills": {
        "min_proficiency": 8, "widen": [{"after_s": 30, "min_proficiency": 3}]}}}
    acd = make_acd(q, {"a1": {"queues": {"support": 4}}})
    ready(acd, "a1")
    assert offered_to(acd.handle(ev.CallQueued("c1", "support"), 0.0)) == []
    assert offered_to(acd.tick(29.0)) == []
    assert offered_to(acd.tick(30.0)) == ["a1"]


def test_required_skills_pick_the_agent_who_has_them() -> None:
    acd = make_acd({"support": {"strategy": "skills"}}, {
        "a1": {"queues": {"support": 9}}, "a2": {"queues": {"support": 5},
                                                 "skills": {"spanish": 7}}})
    ready(acd, "a1", "a2")
    out = acd.handle(ev.CallQueued("c1", "support", skills=("spanish",)), 0.0)
    assert offered_to(out) == ["a2"]


def test_position_announcements_only_when_something_changed_and_never_while_ringing() -> None:
    q = {"sales": {"announce_every_s": 30, "expected_handle_s": 120}}
    acd = make_acd(q, {"a1": {"queues": {"sales": 5}}})
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 0.0)
    acd.handle(ev.CallQueued("c1", "sales"), 0.0)
    acd.handle(ev.CallQueued("c2", "sales"), 1.0)
    out = acd.tick(31.0)
    # estimate: position x expected handle time / agents staffed (at least one)
    assert of(out, ev.AnnouncePosition) == [ev.AnnouncePosition("c1", "sales", 1, 120),
                                            ev.AnnouncePosition("c2", "sales", 2, 240)]
    assert of(acd.tick(61.0), ev.AnnouncePosition) == []  # nothing changed
    acd.handle(ev.CallerHungUp("c1"), 62.0)
    assert of(acd.tick(91.0), ev.AnnouncePosition) == [
        ev.AnnouncePosition("c2", "sales", 1, 120)]
    ready(acd, "a1", now=92.0)  # c2 rings a1: no announcement to a caller about to connect
    assert of(acd.tick(121.0), ev.AnnouncePosition) == []


def test_bad_requests_are_refused_with_what_was_wrong() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    with pytest.raises(AcdError, match="no agent 'zz'"):
        acd.handle(ev.AgentStateRequested("zz", "ready"), 0.0)
    with pytest.raises(AcdError, match="unknown agent state 'away'"):
        acd.handle(ev.AgentStateRequested("a1", "away"), 0.0)
    with pytest.raises(AcdError, match="unknown not-ready reason 'nap'"):
        acd.handle(ev.AgentStateRequested("a1", "not_ready", "nap"), 0.0)
    with pytest.raises(AcdError, match="no queue 'vip'"):
        acd.handle(ev.CallQueued("c1", "vip"), 0.0)


def test_a_code_given_during_the_call_counts_and_a_late_code_names_its_queue() -> None:
    acd = make_acd({"sales": {"wrapup_s": 30}, "billing": {"wrapup_s": 30,
                                                          "wrapup_ends_on_code": False}},
                   {"a1": {"queues": {"sales": 5, "billing": 5}}},
                   call_reasons={"done": "Done"})
    ready(acd, "a1")
    offer = of(acd.handle(ev.CallQueued("c1", "sales"), 0.0), ev.OfferAgent)[0]
    acd.handle(ev.OfferAnswered(offer.offer_id), 1.0)
    acd.handle(ev.WrapUpCoded("a1", "done"), 5.0)  # coded while talking
    acd.handle(ev.CallerHungUp("c1"), 10.0)
    assert acd.agents["a1"].state is AgentState.READY  # the code already ended ACW
    with pytest.raises(AcdError, match="already has its code"):
        acd.handle(ev.WrapUpCoded("a1", "done"), 11.0)
    # billing's wrap-up runs its full time; a code after it still names billing
    offer = of(acd.handle(ev.CallQueued("c2", "billing"), 12.0), ev.OfferAgent)[0]
    acd.handle(ev.OfferAnswered(offer.offer_id), 12.0)
    acd.handle(ev.AgentHungUp("c2"), 20.0)
    acd.tick(50.0)
    out = acd.handle(ev.WrapUpCoded("a1", "done"), 51.0)
    (row,) = rows(out)
    assert (row.call_id, row.queue) == ("c2", "billing")


def test_hold_is_logged_with_its_length_and_a_key_leaves_the_queue() -> None:
    acd = make_acd(ONE, {"a1": {"queues": {"sales": 5}}})
    ready(acd, "a1")
    offer = of(acd.handle(ev.CallQueued("c1", "sales"), 0.0), ev.OfferAgent)[0]
    acd.handle(ev.OfferAnswered(offer.offer_id), 1.0)
    assert names(acd.handle(ev.CallHeld("c1"), 5.0)) == ["HOLD"]
    out = acd.handle(ev.CallResumed("c1"), 12.0)
    assert names(out) == ["UNHOLD"] and rows(out)[0].hold_s == 7.0
    acd.handle(ev.CallQueued("c2", "sales"), 13.0)
    out = acd.handle(ev.CallerLeftWithKey("c2", "1"), 20.0)
    assert names(out) == ["EXITWITHKEY"]
    assert (rows(out)[0].code, rows(out)[0].wait_s, rows(out)[0].position) == ("1", 7.0, 1)
    with pytest.raises(InvalidStateError, match="talking to an agent"):
        acd.handle(ev.CallerLeftWithKey("c1", "1"), 21.0)


def test_a_call_lost_with_its_worker_is_not_an_abandon_and_frees_its_agent() -> None:
    from ivr.acd import Acd, parse_acd
    from ivr.acd import events as ev
    from ivr.acd.queue_log import QueueEvent

    acd = Acd(parse_acd("queues: {q: {when_no_agents: wait, wrapup_s: 0}}\n"
                        "agents: {'1': {name: A, queues: {q: 5}}}\n"))
    acd.handle(ev.AgentStateRequested("1", "ready"), 0.0)
    rows = [a.row for a in acd.handle(ev.CallQueued("ringing", "q"), 1.0)
            if isinstance(a, ev.LogQueueEvent)]
    waiting = acd.handle(ev.CallQueued("waiting", "q"), 2.0)
    rows += [a.row for a in waiting if isinstance(a, ev.LogQueueEvent)]
    for call_id in ("waiting", "ringing"):
        rows += [a.row for a in acd.handle(ev.CallLost(call_id), 3.0)
                 if isinstance(a, ev.LogQueueEvent)]
    finals = [(r.call_id, r.event) for r in rows if r.event in (
        QueueEvent.EXITFAILURE, QueueEvent.ABANDON)]
    assert finals == [("waiting", QueueEvent.EXITFAILURE), ("ringing", QueueEvent.EXITFAILURE)]
    assert acd.agents["1"].state.value == "ready" and not acd.entries


def test_a_ring_all_leg_the_worker_cannot_place_is_no_miss_for_that_agent() -> None:
    from ivr.acd import Acd, parse_acd
    from ivr.acd import events as ev

    acd = Acd(parse_acd("queues: {q: {strategy: ring-all, autopause_after: 1}}\n"
                        "agents: {'1': {name: A, queues: {q: 5}}, '2': {name: B, queues: "
                        "{q: 5}}}\n"))
    for a in ("1", "2"):
        acd.handle(ev.AgentStateRequested(a, "ready"), 0.0)
    offers = [x for x in acd.handle(ev.CallQueued("c", "q"), 1.0)
              if isinstance(x, ev.OfferAgent)]
    assert len(offers) == 2
    acd.handle(ev.OfferFailed(offers[1].offer_id, "error"), 1.1)
    assert acd.agents[offers[1].agent_id].state.value == "ready"  # not paused
    assert acd.agents[offers[0].agent_id].state.value == "reserved"  # still ringing
    # the lone offer left failing the same way is a miss (no loop of re-offers)
    acd.handle(ev.OfferFailed(offers[0].offer_id, "error"), 1.2)
    assert acd.agents[offers[0].agent_id].state.value == "not_ready"
