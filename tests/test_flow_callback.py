"""The queue node's callback option as the caller lives it: the offer after queueing and
after each announcement, the number read back, another number keyed, the ACD's answer, the
goodbye and the hang-up; the caller stays in line meanwhile; the flow check of the option.

The interpreter alone, driven by tests/flow_driver.py's fake clock."""

from __future__ import annotations

import pytest

from ivr.flow import FlowError, RunState, parse_flow
from ivr.say import say
from tests.flow_driver import FakeCall
from tests.test_flow_nodes import make_flow

QUEUE = {"type": "queue", "queue": "support", "prompts": [], "exit_keys": {"0": "vm"},
         "on_unavailable": "vm", "callback": {"key": "1"}}
FLOW = make_flow({"q": QUEUE, "vm": {"type": "hangup"}})
OFFER = "play callback_offer"


def _digits(number: str) -> str:
    return ",".join(say("digits", number, "en-US"))


def queued(caller: str = "5550001") -> FakeCall:
    return FakeCall(FLOW, {"caller": caller}).play("start queued")


def test_the_option_is_offered_on_queueing_and_after_each_announcement() -> None:
    call = queued()
    assert call.visible == ["queue support  0", OFFER]
    call.play("done")
    assert call.visible[-1] == "music hold_music"
    call.play("announce")
    assert call.visible[-1].endswith(",callback_offer")


def test_the_caller_confirms_their_number_hears_when_and_is_hung_up() -> None:
    call = queued().play("done 1")
    assert call.visible[-2:] == ["music off", "play callback_number_is," + _digits("5550001")
                                 + ",callback_confirm"]
    call.play("done 1")  # confirm
    assert call.visible[-1] == "callback 5550001"
    assert call.run.state is RunState.QUEUED  # still in line until the ACD answers
    call.play("cb_taken")
    assert call.visible[-1] == "play callback_taken," + ",".join(
        say("wait_time", 300, "en-US")) + ",callback_goodbye"
    call.play("done")
    assert [h.reason for h in call.hangups()] == ["callback"]
    assert call.notes("queue.callback_taken") == [{"node": "q", "queue": "support",
                                                   "estimated_wait_s": 300}]


def test_the_caller_may_key_another_number_which_is_read_back_too() -> None:
    call = queued().play("done 1 done")
    call.play("0 6 1 2 3 4 #")  # keying starts at once: no "1" first
    assert call.visible[-1] == ("play callback_number_is," + _digits("061234")
                                + ",callback_confirm")
    call.play("1")
    assert call.visible[-2:] == ["stop", "callback 061234"]


def test_a_caller_without_a_number_is_asked_for_one() -> None:
    call = queued(caller="anonymous").play("done 1")
    assert call.visible[-1] == "play callback_confirm"
    call.play("done 5 5 5 9 #")
    assert "callback_number_is" in call.visible[-1]


def test_star_or_silence_goes_back_to_the_music_in_line() -> None:
    call = queued().play("done 1 *")
    assert call.visible[-2:] == ["stop", "music hold_music"]
    call.play("1 done fire")
    assert call.visible[-1] == "music hold_music"
    assert call.run.state is RunState.QUEUED
    assert [n["why"] for n in call.notes("queue.callback_cancelled")] == [
        "cancelled", "no_input"]


def test_a_refusal_says_so_and_the_caller_waits_on() -> None:
    call = queued().play("done 1 done 1 cb_refused")
    assert call.visible[-1] == "play callback_refused"
    call.play("done")
    assert call.visible[-1] == "music hold_music"
    assert call.run.state is RunState.QUEUED and not call.hangups()


def test_an_agent_ringing_ends_the_dialogue_and_exit_keys_still_work_after() -> None:
    call = queued().play("done 1 offering")
    assert call.run.state is RunState.OFFERING
    assert call.visible[-2:] == ["stop", "music hold_music"]
    call.play("requeued 0")
    assert "leave 0" in call.visible[-4:]


def test_the_flow_check_validates_the_option() -> None:
    with pytest.raises(FlowError, match="also an exit key"):
        parse_flow(make_flow({"q": {**QUEUE, "callback": {"key": "0"}},
                              "vm": {"type": "hangup"}}))
    with pytest.raises(FlowError, match="not one DTMF key"):
        parse_flow(make_flow({"q": {**QUEUE, "callback": {"key": "11"}},
                              "vm": {"type": "hangup"}}))
    with pytest.raises(FlowError, match="unknown field|Extra inputs"):
        parse_flow(make_flow({"q": {**QUEUE, "callback": {"keys": "1"}},
                              "vm": {"type": "hangup"}}))
