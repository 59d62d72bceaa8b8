"""The flow interpreter (ivr.flow.interpreter.FlowRun) as a pure state machine.

A tiny fake driver feeds it events at a fake monotonic time (no clock, no media) and records
the actions it returns. Most cases are tables of a script of events and the actions expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.flow import (
    Flow,
    FlowRun,
    Hangup,
    Note,
    Play,
    RunState,
    StopPlayback,
    load_flow,
    parse_flow,
)
from ivr.flow.interpreter import MAX_JUMPS_WITHOUT_INPUT, Action, InvalidStateError
from ivr.flow.model import DTMF_KEYS
from tests.flow_driver import FakeCall as Driver
from tests.flow_driver import show

DEFAULT_FLOW = Path(__file__).resolve().parent / "flows" / "basic.yaml"
T0 = 1000.0  # the fake monotonic clock at the start of every call


# --- the fake driver ---------------------------------------------------------------------------


@dataclass
class FakeCall(Driver):
    """The shared driver, also sending prompt ends that come too late (stale events)."""

    strict: bool = False


def render(action: Action) -> str:
    return show(action)


# --- flows -------------------------------------------------------------------------------------


def make_flow(*, play_barge_in: bool = False, menu_barge_in: bool = True,
              on_no_input: bool = True) -> Flow:
    """intro (play) -> menu; 1 -> one, 2 -> two; invalid -> failed; silence -> silent."""
    text = f"""
name: test
start: intro
nodes:
  intro:
    type: play
    prompts: [welcome, beep]
    barge_in: {str(play_barge_in).lower()}
    next: menu
  menu:
    type: menu
    prompts: [main_menu]
    choices: {{"1": one, "2": two, "3": hop}}
    timeout_ms: 3000
    max_retries: 2
    invalid_prompts: [invalid]
    no_input_prompts: [no_input]
    repeat_key: "9"
    barge_in: {str(menu_barge_in).lower()}
    on_failure: failed
    {"on_no_input: silent" if on_no_input else ""}
  hop: {{type: goto, next: one}}
  one: {{type: hangup, reason: one}}
  two: {{type: hangup, prompts: [goodbye], reason: two}}
  failed: {{type: hangup, reason: failed}}
"""
    if on_no_input:
        text += "  silent: {type: hangup, prompts: [cant_hear], pause_ms: 1500, reason: silent}\n"
    return parse_flow(text, "test.yaml")[0]


FLOWS = {
    "plain": make_flow(),
    "play_barge_in": make_flow(play_barge_in=True),
    "menu_no_barge_in": make_flow(menu_barge_in=False),
    "no_on_no_input": make_flow(on_no_input=False),
}

INTRO = "play welcome,beep"
MENU = "play main_menu"
INVALID = "play invalid,main_menu"
NO_INPUT = "play no_input,main_menu"


@pytest.fixture(scope="module")
def default_flow() -> Flow:
    return load_flow(DEFAULT_FLOW)[0]


# --- tables ------------------------------------------------------------------------------------

# (id, flow, script, visible actions, final state, menu path)
CASES: list[tuple[str, str, str, list[str], RunState, list[str]]] = [
    ("play_node_goes_to_next_when_its_prompts_end",
     "plain", "start done", [INTRO, MENU], RunState.PROMPTING, []),
    ("play_barge_in_key_stops_playback_and_next_menu_consumes_it",
     "play_barge_in", "start 2", [INTRO, "stop", "play goodbye"], RunState.PROMPTING, ["menu:2"]),
    ("play_barge_in_invalid_typeahead_counts_as_an_invalid_menu_key",
     "play_barge_in", "start 7", [INTRO, "stop", INVALID], RunState.PROMPTING, []),
    ("play_barge_in_typeahead_through_a_goto_choice",
     "play_barge_in", "start 3", [INTRO, "stop", "hangup one"], RunState.ENDED, ["menu:3"]),
    ("play_without_barge_in_ignores_digits",
     "plain", "start 2 1 done", [INTRO, MENU], RunState.PROMPTING, []),
    ("menu_valid_key_after_the_prompt_routes_without_stopping_anything",
     "plain", "start done done 1", [INTRO, MENU, "hangup one"], RunState.ENDED, ["menu:1"]),
    ("menu_valid_key_during_the_prompt_stops_it_and_routes",
     "plain", "start done 2", [INTRO, MENU, "stop", "play goodbye"], RunState.PROMPTING,
     ["menu:2"]),
    ("menu_lowercase_key_is_taken_as_uppercase_and_invalid_here",
     "plain", "start done done a", [INTRO, MENU, INVALID], RunState.PROMPTING, []),
    ("menu_invalid_keys_retry_then_go_to_on_failure",
     "plain", "start done done 5 done 6 done 7",
     [INTRO, MENU, INVALID, INVALID, "hangup failed"], RunState.ENDED, []),
    ("menu_invalid_key_during_prompt_stops_it_and_replays_with_invalid_prompt",
     "plain", "start done 5", [INTRO, MENU, "stop", INVALID], RunState.PROMPTING, []),
    ("menu_no_input_retries_then_goes_to_on_no_input",
     "plain", "start done done fire done fire done fire",
     [INTRO, MENU, NO_INPUT, NO_INPUT, "play cant_hear"], RunState.PROMPTING, []),
    ("menu_no_input_falls_back_to_on_failure_without_on_no_input",
     "no_on_no_input", "start done done fire done fire done fire",
     [INTRO, MENU, NO_INPUT, NO_INPUT, "hangup failed"], RunState.ENDED, []),
    ("menu_repeat_key_replays_prompts_without_counting_as_a_retry",
     "plain", "start done done 9 done 9 done 9 done 5 done 6 done 1",
     [INTRO, MENU, MENU, MENU, MENU, INVALID, INVALID, "hangup one"], RunState.ENDED,
     ["menu:1"]),
    ("menu_repeat_key_during_prompt_stops_and_restarts_it",
     "plain", "start done 9", [INTRO, MENU, "stop", MENU], RunState.PROMPTING, []),
    ("menu_without_barge_in_buffers_a_key_until_the_prompt_ends",
     "menu_no_barge_in", "start done 1 done", [INTRO, MENU, "hangup one"], RunState.ENDED,
     ["menu:1"]),
    ("menu_without_barge_in_buffered_invalid_key_counts_once_prompt_ends",
     "menu_no_barge_in", "start done 5 done", [INTRO, MENU, INVALID], RunState.PROMPTING, []),
    ("menu_timer_before_the_deadline_does_nothing",
     "plain", "start done done +1.5 +1.0 +0.25", [INTRO, MENU], RunState.WAITING, []),
    ("menu_timer_fires_once_the_deadline_is_reached",
     "plain", "start done done +2.5 +0.5", [INTRO, MENU, NO_INPUT], RunState.PROMPTING, []),
    ("stale_playback_done_while_waiting_is_ignored",
     "plain", "start done done done done", [INTRO, MENU], RunState.WAITING, []),
    ("stale_playback_done_after_the_end_is_ignored",
     "plain", "start done done 1 done", [INTRO, MENU, "hangup one"], RunState.ENDED, ["menu:1"]),
    ("hangup_node_plays_its_prompts_then_hangs_up",
     "plain", "start done done 2 done", [INTRO, MENU, "play goodbye", "hangup two"],
     RunState.ENDED, ["menu:2"]),
    ("hangup_node_hangs_up_only_after_its_pause",
     "plain", "start done done fire done fire done fire done +1.0 +0.25 4 done +0.25",
     [INTRO, MENU, NO_INPUT, NO_INPUT, "play cant_hear", "hangup silent"], RunState.ENDED, []),
    ("hangup_node_ignores_keys_while_it_plays",
     "plain", "start done done 2 1 2", [INTRO, MENU, "play goodbye"], RunState.PROMPTING,
     ["menu:2"]),
    ("caller_hangup_mid_prompt_ends_the_run_and_nothing_follows",
     "plain", "start done bye done 1 +10", [INTRO, MENU], RunState.ENDED, []),
    ("caller_hangup_while_waiting_ends_the_run_and_cancels_the_timer",
     "plain", "start done done bye +10", [INTRO, MENU], RunState.ENDED, []),
    ("caller_hangup_after_the_flow_hung_up_changes_nothing",
     "plain", "start done done 1 bye", [INTRO, MENU, "hangup one"], RunState.ENDED, ["menu:1"]),
]


@pytest.mark.parametrize(("flow_name", "script", "expected", "state", "path"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_flow_run_script(flow_name: str, script: str, expected: list[str], state: RunState,
                         path: list[str]) -> None:
    call = FakeCall(FLOWS[flow_name]).play(script)
    assert call.visible == expected
    assert call.run.state is state
    assert call.run.path == path
    assert len(call.hangups()) <= 1


# --- details the tables do not show ------------------------------------------------------------


def test_play_without_barge_in_keeps_no_typeahead_but_notes_the_digit() -> None:
    call = FakeCall(FLOWS["plain"]).play("start 2")
    assert call.run.typeahead == []
    assert call.notes("dtmf") == [{"digit": "2", "node": "intro"}]
    assert call.run.state is RunState.PROMPTING


def test_menu_without_barge_in_holds_the_key_while_prompting() -> None:
    call = FakeCall(FLOWS["menu_no_barge_in"]).play("start done 1")
    assert call.run.state is RunState.PROMPTING
    assert call.run.typeahead == ["1"]
    assert call.run.path == []
    assert not any(isinstance(a, StopPlayback) for a in call.actions)


def test_menu_waiting_sets_the_deadline_from_timeout_ms() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done")
    call.now = T0 + 4.0
    call.done()
    assert call.run.state is RunState.WAITING
    assert call.run.deadline == T0 + 4.0 + 3.0


def test_menu_invalid_keys_are_counted_in_notes_and_failure_says_why() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done done 5 done 6 done 7")
    assert [n["count"] for n in call.notes("menu.invalid")] == [1, 2, 3]
    assert [n["key"] for n in call.notes("menu.invalid")] == ["5", "6", "7"]
    assert call.notes("menu.failed") == [{"node": "menu", "why": "invalid"}]


def test_menu_no_input_counts_and_failure_says_no_input() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done done fire done fire done fire")
    assert [n["count"] for n in call.notes("menu.no_input")] == [1, 2, 3]
    assert call.notes("menu.failed") == [{"node": "menu", "why": "no_input"}]


def test_menu_timer_fires_exactly_at_the_deadline_not_before() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done done")
    deadline = call.run.deadline
    assert deadline is not None
    assert call.run.on_timer(deadline - 0.001) == []
    assert call.run.deadline == deadline
    actions = call.run.on_timer(deadline)
    assert Play(("no_input", "main_menu")) in actions


def test_menu_counters_reset_when_a_menu_is_entered_again() -> None:
    text = """
name: loop
start: menu
nodes:
  menu:
    type: menu
    prompts: [main_menu]
    choices: {"1": again}
    max_retries: 1
    on_failure: bye
  again: {type: play, prompts: [beep], next: menu}
  bye: {type: hangup, reason: failed}
"""
    call = FakeCall(parse_flow(text)[0])
    call.play("start done 5 done 1 done done 6 done")
    assert call.hangups() == []  # one invalid before and one after re-entry: within retries
    call.play("7")
    assert call.hangups() == [Hangup("failed")]


def test_stale_playback_done_in_a_pause_does_not_end_the_call_early() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done done fire done fire done fire done")
    assert call.run.state is RunState.PAUSING
    deadline = call.run.deadline
    assert call.done() == []
    assert call.run.deadline == deadline
    assert call.hangups() == []


def test_hangup_after_pause_comes_exactly_pause_ms_after_the_prompt_ends() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done done fire done fire done fire")
    call.now += 0.75  # the goodbye prompt plays for a while
    prompt_end = call.now
    call.play("done fire")
    assert call.hangups() == [Hangup("silent")]
    assert call.times[call.actions.index(Hangup("silent"))] == prompt_end + 1.5


def test_hangup_node_with_pause_and_no_prompts_pauses_at_once() -> None:
    text = """
name: pause
start: bye
nodes:
  bye: {type: hangup, pause_ms: 500, reason: paused}
"""
    call = FakeCall(parse_flow(text)[0]).play("start")
    assert call.actions == [Note("node", {"node": "bye", "type": "hangup"})]
    assert call.run.state is RunState.PAUSING
    call.play("+0.25")
    assert call.hangups() == []
    call.play("+0.25")
    assert call.hangups() == [Hangup("paused")]


def test_hangup_node_without_prompts_or_pause_hangs_up_at_once() -> None:
    text = "name: x\nstart: bye\nnodes:\n  bye: {type: hangup}\n"
    call = FakeCall(parse_flow(text)[0]).play("start")
    assert call.visible == ["hangup normal"]
    assert call.run.ended


def test_caller_hangup_mid_prompt_notes_flow_abandoned_and_returns_nothing_after() -> None:
    call = FakeCall(FLOWS["plain"]).play("start done")
    actions = call.bye()
    assert actions == [Note("flow.abandoned", {"node": "menu", "state": "prompting"})]
    assert call.run.ended
    assert call.run.deadline is None
    now = call.now + 100
    assert call.run.on_playback_done(now) == []
    assert call.run.on_digit("1", now) == []
    assert call.run.on_timer(now) == []
    assert call.run.on_caller_hangup(now) == []


def test_goto_chain_enters_each_node_in_order() -> None:
    text = """
name: chain
start: a
nodes:
  a: {type: goto, next: b}
  b: {type: goto, next: c}
  c: {type: play, prompts: [beep], next: d}
  d: {type: hangup}
"""
    call = FakeCall(parse_flow(text)[0]).play("start")
    assert [n["node"] for n in call.notes("node")] == ["a", "b", "c"]
    assert call.visible == ["play beep"]
    assert call.run.node_name == "c"


def test_goto_loop_ends_the_call_with_flow_error() -> None:
    text = """
name: loop
start: a
nodes:
  a: {type: goto, next: b}
  b: {type: goto, next: a}
"""
    call = FakeCall(parse_flow(text)[0]).play("start")
    assert call.visible == ["hangup flow_error"]
    assert call.run.ended
    assert len(call.notes("node")) == MAX_JUMPS_WITHOUT_INPUT
    assert call.notes("flow.error") == [{"node": "a", "error": "loop without input"}]


def test_start_twice_is_refused() -> None:
    run = FlowRun(FLOWS["plain"])
    run.start(T0)
    with pytest.raises(InvalidStateError, match="start"):
        run.start(T0)


def test_events_before_start_do_nothing() -> None:
    run = FlowRun(FLOWS["plain"])
    assert run.on_digit("1", T0) == []
    assert run.on_playback_done(T0) == []
    assert run.on_timer(T0 + 100) == []
    assert run.state is RunState.NEW


# --- the shipped default flow ------------------------------------------------------------------


def test_default_flow_support_path_ends_with_normal_hangup(default_flow: Flow) -> None:
    call = FakeCall(default_flow).play("start done done 2 done done")
    assert call.visible == ["play welcome", "play main_menu", "play support", "play goodbye",
                            "hangup normal"]
    assert call.run.path == ["main_menu:2"]
    assert " ".join(call.run.path) == "main_menu:2"
    assert call.notes("menu.choice") == [{"node": "main_menu", "key": "2", "target": "support"}]
    assert [n["node"] for n in call.notes("node")] == ["welcome", "main_menu", "support",
                                                       "goodbye"]


def test_default_flow_caller_can_barge_into_the_welcome(default_flow: Flow) -> None:
    call = FakeCall(default_flow).play("start 1 done done")
    assert call.visible == ["play welcome", "stop", "play sales", "play goodbye",
                            "hangup normal"]
    assert call.run.path == ["main_menu:1"]


def test_default_flow_silent_caller_hears_cant_hear_then_bye_after_2s(
    default_flow: Flow,
) -> None:
    call = FakeCall(default_flow).play("start done done fire done fire done fire")
    assert call.visible == ["play welcome", "play main_menu", "play no_input,main_menu",
                            "play no_input,main_menu", "play cant_hear"]
    assert call.run.node_name == "silent_caller"
    call.play("done")
    prompt_end = call.now
    call.play("+1.5")
    assert call.hangups() == []
    call.play("+0.5")
    assert call.hangups() == [Hangup("no_input")]
    assert call.now == prompt_end + 2.0
    assert call.run.path == []


def test_default_flow_waits_5s_for_a_key(default_flow: Flow) -> None:
    call = FakeCall(default_flow).play("start done done")
    assert call.run.deadline == T0 + 5.0


# --- property: any sequence of events ----------------------------------------------------------

ANY_FLOW = {
    **FLOWS,
    "default": load_flow(DEFAULT_FLOW)[0],
    "loop": parse_flow(
        "name: l\nstart: a\nnodes:\n  a: {type: goto, next: b}\n  b: {type: goto, next: a}\n"
    )[0],
}

event = st.one_of(
    st.tuples(st.just("key"), st.sampled_from(list(DTMF_KEYS + "abcd"))),
    st.tuples(st.just("done"), st.just(0.0)),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=8.0)),
    st.tuples(st.just("fire"), st.just(0.0)),
    st.tuples(st.just("bye"), st.just(0.0)),
)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(flow_name=st.sampled_from(list(ANY_FLOW)),
       events=st.lists(event, max_size=40))
def test_any_event_sequence_ends_with_exactly_one_hangup_or_the_caller_leaving(
    flow_name: str, events: list[tuple[str, object]],
) -> None:
    call = FakeCall(ANY_FLOW[flow_name])
    call.start()

    def step(kind: str, arg: object) -> None:
        was_ended = call.run.ended
        was_prompting = call.run.state is RunState.PROMPTING
        if kind == "key":
            out = call.key(str(arg))
        elif kind == "done":
            out = call.done()
        elif kind == "wait":
            out = call.wait(float(arg))  # type: ignore[arg-type]
        elif kind == "fire":
            out = call.fire() if call.run.deadline is not None else []
        else:
            out = call.bye()
        if was_ended:
            assert out == [], "actions after the run ended"
        if any(isinstance(a, StopPlayback) for a in out):
            assert was_prompting, "StopPlayback while nothing was playing"

    for kind, arg in events:
        step(kind, arg)
    # Then let the call run out: prompts end, timers fire, until the flow hangs up.
    for _ in range(100):
        if call.run.ended:
            break
        if call.run.state is RunState.PROMPTING:
            step("done", 0.0)
        else:
            assert call.run.deadline is not None, f"stuck in {call.run.state}"
            step("fire", 0.0)
    assert call.run.ended
    hangups = len(call.hangups())
    abandoned = len(call.notes("flow.abandoned"))
    assert (hangups, abandoned) in {(1, 0), (0, 1)}
