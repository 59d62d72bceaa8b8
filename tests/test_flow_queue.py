"""The queue node with the ACD, as the caller lives it: music on hold while waiting, the
position and wait said between the music, an agent's phone ringing (music goes on), the talk,
hold (music again), and the flow going on at ``after_agent`` once the agent hangs up; exit
keys and the ACD's exits; the flow check of the new fields.

The interpreter alone, driven by tests/flow_driver.py's fake clock: no media, no network.
"""

from __future__ import annotations

import pytest

from ivr.flow import FlowError, RunState, parse_flow
from ivr.flow.interpreter import LeaveQueue
from ivr.say import say
from tests.flow_driver import FakeCall
from tests.test_flow_nodes import make_flow

QUEUE = {"type": "queue", "queue": "support", "prompts": ["support"],
         "exit_keys": {"0": "voicemail"}, "after_agent": "survey",
         "on_unavailable": "no_agents"}
FLOW = make_flow({"q": QUEUE, "survey": {"type": "play", "prompts": ["survey_intro"],
                                         "next": "thanks"}})
ANNOUNCEMENT = "play " + ",".join(say("queue_position", 2, "en-US")
                                  + say("wait_time", 90, "en-US"))


def queued() -> FakeCall:
    return FakeCall(FLOW).play("start done queued")


def test_a_queued_caller_hears_music_on_hold_until_an_agent_talks_to_them() -> None:
    call = queued()
    assert call.run.state is RunState.QUEUED
    assert call.visible == ["play support", "queue support  0", "music hold_music"]
    call.play("offering")
    assert call.run.state is RunState.OFFERING
    assert call.visible[-1] == "music hold_music"  # no second start: the music goes on
    call.play("bridged")
    assert call.run.state is RunState.BRIDGED
    assert call.visible[-1] == "music off"


def test_the_music_is_the_node_moh_prompt() -> None:
    flow = make_flow({"q": {**QUEUE, "moh": "jazz", "prompts": []},
                      "survey": {"type": "hangup"}})
    call = FakeCall(flow).play("start queued")
    assert call.visible == ["queue support  0", "music jazz"]


def test_an_announcement_stops_the_music_says_position_and_wait_then_music_again() -> None:
    call = queued().play("announce")
    assert call.visible[-2:] == ["music off", ANNOUNCEMENT]
    assert call.notes("queue.announced") == [{"node": "q", "position": 2,
                                              "estimated_wait_s": 90}]
    call.play("done")
    assert call.visible[-1] == "music hold_music"
    assert call.run.state is RunState.QUEUED


def test_an_announcement_in_the_call_language() -> None:
    flow = make_flow({"q": QUEUE, "survey": {"type": "hangup"}}, language="zh-CN")
    call = FakeCall(flow).play("start done queued announce")
    assert call.visible[-1] == "play " + ",".join(
        say("queue_position", 2, "zh-CN") + say("wait_time", 90, "zh-CN"))


def test_no_announcement_while_an_agent_phone_rings_and_ringing_cuts_one_short() -> None:
    call = queued().play("offering")
    before = list(call.visible)
    call.play("announce")
    assert call.visible == before
    call = queued().play("announce offering")
    assert call.visible[-2:] == ["stop", "music hold_music"]
    assert call.run.state is RunState.OFFERING


def test_a_ring_no_answer_puts_the_caller_back_to_waiting_with_music() -> None:
    call = queued().play("offering requeued")
    assert call.run.state is RunState.QUEUED
    assert call.visible.count("music hold_music") == 1  # it never stopped
    call.play("announce done")
    assert call.visible[-1] == "music hold_music"


def test_bridged_during_an_announcement_stops_it_and_the_music() -> None:
    call = queued().play("announce bridged")
    assert call.visible[-1] == "stop"
    assert call.run.state is RunState.BRIDGED
    assert call.visible.count("music off") == 1  # stopped once, by the announcement


def test_agent_hold_gives_the_caller_music_and_resume_takes_it_away() -> None:
    call = queued().play("offering bridged held")
    assert call.visible[-1] == "music hold_music"
    call.play("held")  # a second re-INVITE sendonly changes nothing
    assert call.visible.count("music hold_music") == 2
    call.play("resumed")
    assert call.visible[-1] == "music off"
    assert call.run.state is RunState.BRIDGED


def test_agent_hangs_up_the_flow_goes_on_at_after_agent() -> None:
    call = queued().play("offering bridged held agent_done")
    assert call.visible[-2:] == ["music off", "play survey_intro"]
    assert call.run.node_name == "survey"
    assert call.notes("queue.agent_done") == [{"node": "q", "queue": "support",
                                               "target": "survey"}]


def test_without_after_agent_the_ivr_hangs_up_completed() -> None:
    flow = make_flow({"q": {k: v for k, v in QUEUE.items() if k != "after_agent"}})
    call = FakeCall(flow).play("start done queued bridged agent_done")
    assert call.visible[-1] == "hangup completed"
    assert call.run.ended


@pytest.mark.parametrize("script", ["start done", "start done queued",
                                    "start done queued offering",
                                    "start done queued announce"])
def test_an_exit_key_leaves_the_queue_for_its_target(script: str) -> None:
    call = FakeCall(FLOW).play(script).play("0")
    assert LeaveQueue("0") in call.actions
    assert call.run.node_name == "voicemail"
    assert call.visible[-1] == "hangup voicemail"
    assert not call.run.music
    assert call.notes("queue.exit_key") == [{"node": "q", "queue": "support", "key": "0",
                                             "target": "voicemail"}]


def test_other_keys_while_queued_or_bridged_do_nothing() -> None:
    call = queued()
    before = list(call.visible)
    call.play("5 # 1 bridged 0 7")
    assert call.visible == [*before, "music off"]
    assert LeaveQueue("0") not in call.actions


@pytest.mark.parametrize(("script", "node"), [
    ("exit", "no_agents"),  # no target: on_unavailable
    ("exit:survey", "survey"),
    ("exit:nowhere", "no_agents"),  # not a node: on_unavailable, and a flow.error note
])
def test_the_acd_sends_the_caller_on(script: str, node: str) -> None:
    call = queued().play("offering " + script)
    assert call.run.node_name == node
    assert "music off" in call.visible
    assert not call.run.music


def test_an_exit_before_queued_goes_on_without_music() -> None:
    call = FakeCall(FLOW).play("start done exit")
    assert call.run.node_name == "no_agents"
    assert "music off" not in call.visible


@pytest.mark.parametrize("script", ["agent_done", "held", "resumed", "requeued"])
def test_agent_events_out_of_turn_are_ignored(script: str) -> None:
    call = queued()
    before = list(call.visible)
    call.play(script)
    assert call.visible == before
    assert call.run.state is RunState.QUEUED


def test_after_the_agent_part_queue_messages_are_ignored() -> None:
    call = queued().play("bridged agent_done")
    before = list(call.visible)
    call.play("exit offering bridged agent_done announce")
    assert call.visible == before


def test_the_caller_hanging_up_while_queued_ends_the_run() -> None:
    call = queued().play("offering bye")
    assert call.run.ended
    assert call.notes("flow.abandoned")[-1]["state"] == "offering"


# -- flow check ------------------------------------------------------------------------------

HEAD = "name: t\nstart: q\nnodes:\n  q:\n    type: queue\n    queue: sales\n"


@pytest.mark.parametrize(("fields", "expected"), [
    ("    on_unavailable: bye\n    after_agent: nowhere\n",
     "t.yaml:4: node 'q': goes to 'nowhere', which is not a node of this flow"),
    ("    on_unavailable: bye\n    exit_keys: {\"0\": nowhere}\n",
     "t.yaml:4: node 'q': goes to 'nowhere', which is not a node of this flow"),
    ("    on_unavailable: bye\n    exit_keys: {\"55\": bye}\n",
     "t.yaml:8: node 'q': exit_keys: exit key '55' is not one DTMF key (0123456789*#ABCD)"),
    ("    on_unavailable: bye\n    exit_keys: {0: bye}\n",
     "t.yaml:8: node 'q': exit_keys: key 0 must be quoted, e.g. \"0\": ... "),
])
def test_flow_check_names_bad_queue_fields(fields: str, expected: str) -> None:
    with pytest.raises(FlowError) as info:
        parse_flow(HEAD + fields + "  bye: {type: hangup}\n", "t.yaml")
    assert [str(i) for i in info.value.issues][0].startswith(expected)


def test_the_moh_prompt_is_one_the_flow_needs() -> None:
    flow, _ = parse_flow(HEAD + "    on_unavailable: bye\n  bye: {type: hangup}\n", "t.yaml")
    assert "hold_music" in flow.prompt_names()
    flow, _ = parse_flow(HEAD + "    moh: jazz\n    on_unavailable: bye\n"
                         "  bye: {type: hangup}\n", "t.yaml")
    assert "jazz" in flow.prompt_names() and "hold_music" not in flow.prompt_names()
