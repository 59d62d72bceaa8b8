"""Transfers in a call's session (ivr/transfer_call.py inside ivr/queue_call.py), with fake
legs, link and phone (tests/acd_fakes.py): what happens to the caller's music, the bridges,
the agents' legs and the recordings for each of the controller's transfer messages, and
what the controller is told when an agent's phone sends REFER or hangs up mid-consult."""

from __future__ import annotations

from pathlib import Path

from ivr import messages as m
from ivr import transfer_messages as tm
from ivr.flow import RunState
from ivr.transfer_call import refer_target
from media import LegReferred
from tests.acd_fakes import FakeLeg
from tests.test_queue_call import bridged, runs_in_loop


async def _second_agent(d, offer_id: str = "o2", agent_id: str = "1002",  # type: ignore[no-untyped-def]
                        record: bool = False) -> FakeLeg:
    leg = await d.agent(offer_id, record=record, agent_id=agent_id)
    leg.rings()
    leg.picks_up()
    await d.settle()
    return leg


@runs_in_loop
async def test_blind_transfer_releases_the_agent_gives_music_then_bridges_the_next(
        tmp_path: Path) -> None:
    d, a = await bridged(tmp_path)
    await d.tell(tm.Release(d.call_id, "1001", "transferred"))
    assert a.log[-1] == "bye" and d.caller.music
    assert d.session.run.state is RunState.QUEUED
    assert not d.link.of(m.AgentGone)  # the ACD sent the agent away: no "agent gone"
    b = await _second_agent(d)
    assert d.link.of(m.OfferAnswered)[-1] == m.OfferAnswered(d.call_id, "o2")
    await d.tell(m.Connect(d.call_id, "o2", "1002"))
    assert d.media.log[-1] == f"bridge 1-{b.leg_id}" and not d.caller.music
    b.hangs_up()
    await d.settle()
    assert d.link.of(m.AgentGone) == [m.AgentGone(d.call_id)]
    assert "play survey_intro" in d.caller.log  # the flow goes on after the last agent


@runs_in_loop
async def test_a_transfer_to_a_flow_node_or_a_queue_after_the_release(tmp_path: Path) -> None:
    d, _ = await bridged(tmp_path)
    await d.tell(tm.Release(d.call_id, "1001", "transferred"))
    await d.tell(m.Requeued(d.call_id, "billing", 1))  # a queue transfer: waits, music
    assert d.caller.music and d.session.run.state is RunState.QUEUED
    await d.tell(m.Exit(d.call_id, "billing", "transfer", "survey"))  # then a flow node
    assert "play survey_intro" in d.caller.log and not d.caller.music


@runs_in_loop
async def test_consult_holds_the_caller_bridges_the_agents_then_hands_the_caller_over(
        tmp_path: Path) -> None:
    d, a = await bridged(tmp_path, record=True)
    await d.tell(tm.ConsultHold(d.call_id, "1001", "o2", "1002"))
    assert d.caller.music and d.media.log[-1] == f"unbridge 1-{a.leg_id}"
    assert d.media.recordings[0].stopped  # the first agent's segment
    b = await _second_agent(d)
    assert d.caller.music  # still: the consulted agent is never bridged to the caller
    await d.tell(tm.ConsultConnect(d.call_id, "1001", "1002"))
    assert d.media.log[-1] == f"bridge {a.leg_id}-{b.leg_id}"
    await d.tell(tm.Release(d.call_id, "1001", "transferred"))
    await d.tell(tm.BridgeAgent(d.call_id, "1002"))
    assert a.log[-1] == "bye"
    assert d.media.log[-1] == f"bridge 1-{b.leg_id}" and not d.caller.music
    assert [r.path.name for r in d.media.recordings] == [f"{d.call_id}-agent1.wav",
                                                         f"{d.call_id}-agent2.wav"]
    b.hangs_up()
    await d.settle()
    recorded = d.store.events("recording")
    assert [r["agent_id"] for r in recorded] == ["1001", "1002"]  # one file per segment
    assert d.link.of(m.AgentGone) == [m.AgentGone(d.call_id)]


@runs_in_loop
async def test_a_consult_that_ends_puts_the_caller_back_with_the_first_agent(
        tmp_path: Path) -> None:
    d, a = await bridged(tmp_path)
    await d.tell(tm.ConsultHold(d.call_id, "1001", "o2", "1002"))
    b = await _second_agent(d)
    await d.tell(tm.ConsultConnect(d.call_id, "1001", "1002"))
    b.hangs_up()  # the consulted agent hangs up: told as AgentLeft, the caller stays
    await d.settle()
    assert d.link.of(tm.AgentLeft) == [tm.AgentLeft(d.call_id, "1002")]
    assert not d.link.of(m.AgentGone) and "play survey_intro" not in d.caller.log
    await d.tell(tm.ConsultEnd(d.call_id, "1001", "1002", "consult-gone"))
    assert d.media.log[-1] == f"bridge 1-{a.leg_id}" and not d.caller.music


@runs_in_loop
async def test_the_first_agent_hanging_up_mid_consult_is_agent_left(tmp_path: Path) -> None:
    d, a = await bridged(tmp_path)
    await d.tell(tm.ConsultHold(d.call_id, "1001", "o2", "1002"))
    await d.agent("o2", agent_id="1002")  # still ringing
    a.hangs_up()
    await d.settle()
    assert d.link.of(tm.AgentLeft) == [tm.AgentLeft(d.call_id, "1001")]
    assert d.caller.music and d.session.run.state is RunState.QUEUED
    b = d.media.agents[-1]
    b.picks_up()
    await d.settle()
    await d.tell(m.Connect(d.call_id, "o2", "1002"))  # now a blind transfer's answer
    assert d.media.log[-1] == f"bridge 1-{b.leg_id}" and not d.caller.music


@runs_in_loop
async def test_a_conference_bridges_all_three(tmp_path: Path) -> None:
    d, a = await bridged(tmp_path)
    await d.tell(tm.ConsultHold(d.call_id, "1001", "o2", "1002"))
    b = await _second_agent(d)
    await d.tell(tm.ConsultConnect(d.call_id, "1001", "1002"))
    await d.tell(tm.Conference(d.call_id, ("1001", "1002")))
    assert {f"bridge 1-{a.leg_id}", f"bridge 1-{b.leg_id}",
            f"bridge {a.leg_id}-{b.leg_id}"} <= set(d.media.log)
    assert not d.caller.music
    a.hangs_up()
    await d.settle()
    assert d.link.of(tm.AgentLeft) == [tm.AgentLeft(d.call_id, "1001")]
    assert not d.caller.music  # the caller goes on talking to the second agent


@runs_in_loop
async def test_a_refer_from_the_agents_phone_asks_the_acd_and_never_reaches_the_caller(
        tmp_path: Path) -> None:
    d, a = await bridged(tmp_path)
    a.send(LegReferred(a.leg_id, "<sip:1002@cc.test>", False))
    await d.settle()
    assert d.link.of(tm.TransferAsked) == [tm.TransferAsked(d.call_id, "1001", "agent:1002")]
    assert not [e for e in d.caller.log if "refer" in e or "transfer" in e]


@runs_in_loop
async def test_dial_out_bridges_the_caller_to_the_number_and_the_flow_goes_on_after(
        tmp_path: Path) -> None:
    d, _ = await bridged(tmp_path)
    await d.tell(tm.Release(d.call_id, "1001", "transferred"))
    await d.tell(tm.DialOut(d.call_id, "+4930123456", "sip:+4930123456@cc.test"))
    out = d.media.agents[-1]
    assert d.media.placed[-1][0] == "sip:+4930123456@cc.test"
    out.picks_up()
    await d.settle()
    assert d.media.log[-1] == f"bridge 1-{out.leg_id}" and not d.caller.music
    out.hangs_up()
    await d.settle()
    assert "play survey_intro" in d.caller.log


def test_refer_to_uris_map_to_acd_targets() -> None:
    assert refer_target("<sip:1002@cc.test>") == "agent:1002"
    assert refer_target("sip:billing@cc.test;transport=udp") == "queue:billing"
    assert refer_target("<sip:+4930123456@cc.test>") == "tel:+4930123456"
    assert refer_target("tel:0301234567") == "tel:0301234567"
