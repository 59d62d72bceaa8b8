"""Transfers in the ACD core, driven with events and a fake clock: blind transfers to an
agent, a queue, a flow node and an outside number (dial plan), consult transfers completed,
cancelled, not answered and turned into a conference, call segments, wrap-up when the
agent leaves, and the queue-log rows each transfer leaves."""

from __future__ import annotations

import pytest

from ivr.acd import AcdConfigError, AgentState, InvalidStateError, TransferRefused, parse_acd
from ivr.acd import events as ev
from ivr.acd import transfer_events as tx
from ivr.acd.metrics import queue_figures
from ivr.acd.queue_log import QueueEvent

from .acd_util import make_acd, names, of, ready, rows

Q = {"ring_timeout_s": 15, "wrapup_s": 10, "announce_every_s": 0}
AGENTS = {"1001": {"queues": {"sales": 5}}, "1002": {"queues": {"sales": 5}},
          "2001": {"queues": {"billing": 5}}}


def connected(dialplan: list[str] | None = None, **queues: dict[str, object]):  # type: ignore[no-untyped-def]
    """c1 in sales talking to 1001 (answered at t=5); 1002 and 2001 ready."""
    acd = make_acd({"sales": {**Q, **queues.get("sales", {})},
                    "billing": {**Q, **queues.get("billing", {})}}, AGENTS,
                   dialplan=dialplan or [])
    ready(acd, "1001", now=0.0)
    out = acd.handle(ev.CallQueued("c1", "sales", caller="+4930111"), 1.0)
    (offer,) = of(out, ev.OfferAgent)
    out = acd.handle(ev.OfferAnswered(offer.offer_id), 5.0)
    assert of(out, tx.SegmentStarted) == [tx.SegmentStarted("c1", "1001", "sales", 5.0)]
    ready(acd, "1002", "2001", now=5.0)
    return acd


def _state(acd, agent_id: str) -> AgentState:  # type: ignore[no-untyped-def]
    return acd.agents[agent_id].state


# ---- blind --------------------------------------------------------------------------


def test_blind_transfer_to_an_agent_releases_the_first_into_wrap_up_and_rings_the_second(
) -> None:
    acd = connected()
    out = acd.handle(tx.TransferRequested("c1", "agent:1002", by="1001"), 65.0)
    assert of(out, tx.SegmentEnded) == [
        tx.SegmentEnded("c1", "1001", "sales", 5.0, 65.0, "transferred")]
    assert of(out, tx.ReleaseAgent) == [tx.ReleaseAgent("c1", "1001", "transferred")]
    assert _state(acd, "1001") is AgentState.WRAP_UP  # when they left, not at the end
    (row,) = [r for r in rows(out) if r.event is QueueEvent.BLINDTRANSFER]
    assert (row.agent_id, row.code, row.reason, row.talk_s) == ("1001", "1002", "agent:1002",
                                                                60.0)
    assert [o.agent_id for o in of(out, ev.OfferAgent)] == ["1002"]
    assert of(out, tx.CallTransferred) == [tx.CallTransferred("c1", "1001", "agent:1002",
                                                              "blind")]
    out = acd.handle(ev.OfferAnswered(of(out, ev.OfferAgent)[0].offer_id), 68.0)
    (connect,) = [r for r in rows(out) if r.event is QueueEvent.CONNECT]
    assert connect.reason == "transfer"  # the same call, not answered again
    assert of(out, tx.SegmentStarted) == [tx.SegmentStarted("c1", "1002", "sales", 68.0)]
    out = acd.handle(ev.CallerHungUp("c1"), 100.0)
    (final,) = [r for r in rows(out) if r.event is QueueEvent.COMPLETECALLER]
    assert (final.agent_id, final.talk_s) == ("1002", 32.0)  # the second agent's talk
    assert _state(acd, "1002") is AgentState.WRAP_UP


def test_answered_once_in_the_figures_after_a_transfer_between_agents() -> None:
    acd = make_acd({"sales": Q}, {"a": {"queues": {"sales": 5}}, "b": {"queues": {"sales": 5}}})
    log = []
    log += rows(ready(acd, "a", "b"))
    out = acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    log += rows(out)
    offer = of(out, ev.OfferAgent)[0]
    other = "b" if offer.agent_id == "a" else "a"
    log += rows(acd.handle(ev.OfferAnswered(offer.offer_id), 2.0))
    out = acd.handle(tx.TransferRequested("c1", f"agent:{other}"), 10.0)
    log += rows(out)
    log += rows(acd.handle(ev.OfferAnswered(of(out, ev.OfferAgent)[0].offer_id), 11.0))
    log += rows(acd.handle(ev.AgentHungUp("c1"), 20.0))
    fig = queue_figures(log, "sales", 30.0)
    assert (fig.offered, fig.answered, fig.answered_in_service_level) == (1, 1, 1)


def test_a_blind_transfer_nobody_answers_goes_back_to_the_queue_never_dropped() -> None:
    acd = connected()
    out = acd.handle(tx.TransferRequested("c1", "agent:1002"), 60.0)
    offer = of(out, ev.OfferAgent)[0]
    acd.handle(ev.CallQueued("c2", "sales"), 61.0)  # came later than c1
    assert offer.agent_id == "1002"
    out = acd.tick(75.0)
    assert of(out, ev.RequeueCall) == [ev.RequeueCall("c1", "sales", 1)]  # ahead of c2
    assert acd.entries["c1"].enter_at == 1.0
    # the caller then hangs up: answered before, so no abandon
    out = acd.handle(ev.CallerHungUp("c1"), 80.0)
    assert "ABANDON" not in names(out)
    assert [r.reason for r in rows(out) if r.event is QueueEvent.COMPLETECALLER] == [
        "after-transfer caller-gone"]


def test_blind_transfer_to_a_queue_keeps_the_enter_time_and_starts_a_new_wait() -> None:
    acd = connected()
    acd.handle(ev.AgentStateRequested("2001", "not_ready", "break"), 5.0)
    acd.handle(ev.CallQueued("b1", "billing"), 20.0)  # a billing caller who came later
    out = acd.handle(tx.TransferRequested("c1", "queue:billing", by="1001"), 65.0)
    assert names(out) == ["BLINDTRANSFER", "EXITTRANSFER", "ENTERQUEUE"]
    exit_row, enter = [r for r in rows(out) if r.event in (QueueEvent.EXITTRANSFER,
                                                            QueueEvent.ENTERQUEUE)]
    assert (exit_row.queue, exit_row.agent_id, exit_row.reason) == ("sales", "1001",
                                                                    "queue:billing")
    assert (enter.queue, enter.code, enter.note, enter.wait_s) == ("billing", "transfer",
                                                                   "sales", 64.0)
    assert of(out, ev.RequeueCall) == [ev.RequeueCall("c1", "billing", 1)]  # first caller
    assert _state(acd, "1001") is AgentState.WRAP_UP
    entry = acd.entries["c1"]
    assert (entry.queue, entry.enter_at, entry.wait_start) == ("billing", 1.0, 65.0)
    out = ready(acd, "2001", now=70.0)
    (offer,) = of(out, ev.OfferAgent)
    assert offer.call_id == "c1"
    out = acd.handle(ev.OfferAnswered(offer.offer_id), 75.0)
    (connect,) = [r for r in rows(out) if r.event is QueueEvent.CONNECT]
    assert (connect.queue, connect.wait_s, connect.reason) == ("billing", 10.0, "")


def test_a_transfer_to_a_queue_drops_the_old_queues_timers() -> None:
    acd = connected(sales={"max_wait_s": 30, "announce_every_s": 5},
                    billing={"max_wait_s": 300})
    acd.handle(ev.AgentStateRequested("2001", "not_ready", "break"), 5.0)
    acd.handle(tx.TransferRequested("c1", "queue:billing"), 20.0)
    out = acd.tick(200.0)  # sales' max_wait (31) and announcements do not touch it now
    assert not of(out, ev.Overflow) and not of(out, ev.AnnouncePosition)
    out = acd.tick(320.0)
    assert of(out, ev.Overflow) == [ev.Overflow("c1", "billing", "timeout", None)]


def test_blind_transfer_to_a_flow_node_and_to_an_allowed_number() -> None:
    acd = connected(dialplan=["+4930XXXXXXX", "1800NXXXXXX"])
    acd.flow_nodes = frozenset({"survey"})
    out = acd.handle(tx.TransferRequested("c1", "flow:survey"), 10.0)
    assert of(out, ev.Overflow) == [ev.Overflow("c1", "sales", "transfer", "survey")]
    assert "c1" not in acd.entries and _state(acd, "1001") is AgentState.WRAP_UP
    acd = connected(dialplan=["+4930XXXXXXX"])
    out = acd.handle(tx.TransferRequested("c1", "tel:+49 30 123-4567", by="1001"), 10.0)
    assert of(out, tx.DialOut) == [tx.DialOut("c1", "+49301234567", "1001")]
    assert [r.event for r in rows(out) if r.call_id == "c1" and not r.old_state] == [
        QueueEvent.BLINDTRANSFER, QueueEvent.EXITTRANSFER]


@pytest.mark.parametrize(("to", "reason"), [
    ("agent:9999", "no agent '9999'"),
    ("agent:1001", "already has this call"),
    ("queue:nope", "no queue 'nope'"),
    ("flow:nowhere", "no node 'nowhere' in the flow"),
    ("tel:+4930123", "no pattern of the dial plan allows it"),
    ("tel:12ab", "is not a phone number"),
    ("fax:1", "is not agent:ID, queue:NAME, flow:NODE or tel:NUMBER"),
])
def test_a_refused_target_says_why_and_changes_nothing(to: str, reason: str) -> None:
    acd = connected(dialplan=["+4930XXXXXXX"])
    acd.flow_nodes = frozenset({"survey"})
    with pytest.raises(TransferRefused, match=reason):
        acd.handle(tx.TransferRequested("c1", to), 10.0)
    assert _state(acd, "1001") is AgentState.ON_CALL
    assert acd.entries["c1"].agent_id == "1001"


def test_refusals_for_busy_agents_full_queues_and_an_empty_dial_plan() -> None:
    acd = connected(billing={"max_size": 1})
    acd.handle(ev.AgentStateRequested("1002", "not_ready", "lunch"), 6.0)
    with pytest.raises(TransferRefused, match="1002 is not_ready, not ready"):
        acd.handle(tx.TransferRequested("c1", "agent:1002"), 10.0)
    acd.handle(ev.AgentStateRequested("2001", "not_ready", "lunch"), 6.0)
    acd.handle(ev.CallQueued("b1", "billing"), 7.0)
    with pytest.raises(TransferRefused, match="queue billing is full"):
        acd.handle(tx.TransferRequested("c1", "queue:billing"), 10.0)
    with pytest.raises(TransferRefused, match="allows no outside numbers"):
        acd.handle(tx.TransferRequested("c1", "tel:+4930123"), 10.0)
    with pytest.raises(InvalidStateError, match="b1 is waiting: no agent"):
        acd.handle(tx.TransferRequested("b1", "queue:sales"), 10.0)


def test_only_the_agent_who_has_the_call_may_transfer_it() -> None:
    acd = connected()
    with pytest.raises(Exception, match="agent 1002 does not have call c1"):
        acd.handle(tx.TransferRequested("c1", "queue:billing", by="1002"), 10.0)


def test_a_bad_dial_plan_pattern_is_named_with_its_line() -> None:
    with pytest.raises(AcdConfigError, match=r"<acd>:2: dialplan: dial plan pattern '\+49#': "
                                             r"'#' at position 4 is not a digit"):
        parse_acd("queues: {q: {}}\ndialplan: ['+49#']\n")


# ---- consult ------------------------------------------------------------------------


def _consulting(acd, to: str = "agent:1002", now: float = 20.0):  # type: ignore[no-untyped-def]
    out = acd.handle(tx.ConsultRequested("c1", to, by="1001"), now)
    (started,) = of(out, tx.ConsultStarted)
    (offer,) = of(out, ev.OfferAgent)
    assert offer.offer_id == started.offer_id
    return started


def test_consult_then_complete_hands_the_caller_over_and_logs_both_talk_times() -> None:
    acd = connected()
    started = _consulting(acd)
    assert names(acd.handle(ev.OfferAnswered(started.offer_id), 22.0)) == []
    assert _state(acd, "1001") is AgentState.ON_CALL
    assert _state(acd, "1002") is AgentState.ON_CALL
    out = acd.handle(tx.ConsultCompleted("c1", by="1001"), 30.0)
    (row,) = [r for r in rows(out) if r.event is QueueEvent.ATTENDEDTRANSFER]
    assert (row.agent_id, row.code, row.talk_s, row.hold_s) == ("1001", "1002", 25.0, 10.0)
    assert of(out, tx.BridgeAgent) == [tx.BridgeAgent("c1", "1002")]
    assert of(out, tx.SegmentEnded)[0].agent_id == "1001"
    assert of(out, tx.SegmentStarted) == [tx.SegmentStarted("c1", "1002", "sales", 30.0)]
    assert _state(acd, "1001") is AgentState.WRAP_UP
    out = acd.handle(ev.AgentHungUp("c1"), 50.0)
    (final,) = [r for r in rows(out) if r.event is QueueEvent.COMPLETEAGENT]
    assert (final.agent_id, final.talk_s) == ("1002", 20.0)


def test_a_consult_nobody_answers_puts_the_caller_back_with_the_first_agent() -> None:
    acd = connected()
    started = _consulting(acd)
    out = acd.tick(35.0)  # 15 s ring timeout
    assert of(out, tx.ConsultEnded) == [tx.ConsultEnded("c1", "1001", "1002", "no-answer")]
    assert acd.entries["c1"].agent_id == "1001"
    assert _state(acd, "1001") is AgentState.ON_CALL
    assert _state(acd, "1002") is AgentState.NOT_READY  # autopause, as any miss
    assert not acd.consults and started.offer_id not in acd.offers
    # and a refusal by the phone likewise
    ready(acd, "1002", now=36.0)
    started = _consulting(acd, now=40.0)
    out = acd.handle(ev.OfferFailed(started.offer_id, "rejected"), 41.0)
    assert of(out, tx.ConsultEnded)[0].reason == "rejected"
    assert acd.entries["c1"].agent_id == "1001"


def test_consult_cancelled_returns_to_the_caller_and_frees_the_consulted_agent() -> None:
    acd = connected()
    started = _consulting(acd)
    acd.handle(ev.OfferAnswered(started.offer_id), 22.0)
    out = acd.handle(tx.ConsultCancelled("c1"), 40.0)
    assert of(out, tx.ReleaseAgent) == [tx.ReleaseAgent("c1", "1002", "consult-cancelled")]
    assert of(out, tx.ConsultEnded)[0].reason == "cancelled"
    assert not of(out, tx.SegmentEnded)  # the consulted agent never had the caller
    assert _state(acd, "1002") is AgentState.READY
    assert _state(acd, "1001") is AgentState.ON_CALL


def test_consult_to_a_queue_rings_one_of_its_ready_agents() -> None:
    acd = connected()
    started = _consulting(acd, "queue:billing")
    assert started.consult_agent == "2001"
    acd.handle(ev.AgentStateRequested("1002", "not_ready", "lunch"), 21.0)
    with pytest.raises(InvalidStateError, match="in a consult"):
        acd.handle(tx.ConsultRequested("c1", "agent:1002"), 22.0)
    acd.handle(tx.ConsultCancelled("c1"), 23.0)
    acd.handle(ev.AgentStateRequested("2001", "not_ready", "lunch"), 24.0)
    with pytest.raises(TransferRefused, match="no agent of queue billing is ready"):
        acd.handle(tx.ConsultRequested("c1", "queue:billing"), 25.0)
    with pytest.raises(TransferRefused, match="takes a blind transfer"):
        acd.handle(tx.ConsultRequested("c1", "tel:123"), 25.0)


def test_complete_before_the_answer_is_refused_but_hanging_up_makes_it_blind() -> None:
    acd = connected()
    started = _consulting(acd)
    with pytest.raises(InvalidStateError, match="has not answered the consult yet"):
        acd.handle(tx.ConsultCompleted("c1"), 21.0)
    out = acd.handle(tx.AgentLeft("c1", "1001"), 22.0)
    assert "BLINDTRANSFER" in names(out) and _state(acd, "1001") is AgentState.WRAP_UP
    out = acd.handle(ev.OfferAnswered(started.offer_id), 24.0)
    assert of(out, ev.CallConnected)[0].agent_id == "1002"
    assert acd.entries["c1"].agent_id == "1002"


def test_conference_then_the_first_agent_leaves() -> None:
    acd = connected()
    started = _consulting(acd)
    acd.handle(ev.OfferAnswered(started.offer_id), 22.0)
    out = acd.handle(tx.ConferenceRequested("c1"), 25.0)
    assert of(out, tx.ConferenceStarted) == [tx.ConferenceStarted("c1", ("1001", "1002"))]
    assert names(out) == ["CONFERENCE"]
    assert of(out, tx.SegmentStarted) == [tx.SegmentStarted("c1", "1002", "sales", 25.0)]
    out = acd.handle(tx.AgentLeft("c1", "1001"), 40.0)
    assert "ATTENDEDTRANSFER" in names(out)
    assert not of(out, tx.ReleaseAgent)  # their leg is already gone
    assert of(out, tx.SegmentEnded)[0].agent_id == "1001"
    assert _state(acd, "1001") is AgentState.WRAP_UP
    out = acd.handle(ev.CallerHungUp("c1"), 60.0)
    (seg,) = of(out, tx.SegmentEnded)
    assert (seg.agent_id, seg.started_at, seg.end) == ("1002", 25.0, "completed_caller")


def test_the_caller_hanging_up_in_a_conference_ends_both_segments() -> None:
    acd = connected()
    started = _consulting(acd)
    acd.handle(ev.OfferAnswered(started.offer_id), 22.0)
    acd.handle(tx.ConferenceRequested("c1"), 25.0)
    out = acd.handle(ev.CallerHungUp("c1"), 60.0)
    assert sorted((s.agent_id, s.end) for s in of(out, tx.SegmentEnded)) == [
        ("1001", "completed_caller"), ("1002", "completed_caller")]
    assert _state(acd, "1001") is AgentState.WRAP_UP
    assert _state(acd, "1002") is AgentState.WRAP_UP


def test_the_consulted_agent_leaving_the_conference_leaves_the_caller_with_the_first() -> None:
    acd = connected()
    started = _consulting(acd)
    acd.handle(ev.OfferAnswered(started.offer_id), 22.0)
    acd.handle(tx.ConferenceRequested("c1"), 25.0)
    out = acd.handle(tx.AgentLeft("c1", "1002"), 30.0)
    assert of(out, tx.ConsultEnded)[0].reason == "consult-gone"
    assert _state(acd, "1002") is AgentState.WRAP_UP
    assert acd.entries["c1"].agent_id == "1001"
