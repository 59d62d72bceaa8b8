"""A yes/no question (``collect`` with ``kind: yes_no``), the pure parts: a spoken yes/no (or
a synonym) or keys 1/2 answer it, the answer goes into the variable a branch reads, no-input
and no-match prompts and counts, confidence thresholds with an optional "you said yes,
right?", barge-in, and the settings ``ivr flow check`` refuses, with their line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.flow import FlowError, FlowRun, parse_flow
from ivr.flow.interpreter import Action, Listen, Note, Play, StopListening, StopPlayback
from ivr.flow.model import check_flow_speech
from ivr.flow.speech import NO_PHRASES, YES_PHRASES

FLOW = """
name: yes-no
language: en-US
start: about_order
nodes:
  about_order:
    type: collect
    kind: yes_no
    prompts: [about_last_order]
    var: about_order
    speech: {en-US: yes_no}
    confidence: {confirm_below: 0.5, reject_below: 0.1}
    speech_confirm: {prompts: {yes: [you_said_yes]}}
    no_match_prompts: [didnt_catch]
    no_input_prompts: [no_input]
    invalid_prompts: [invalid]
    max_retries: 1
    next: route
    on_failure: agent
  route:
    type: branch
    cases: [{var: about_order, equals: "yes", goto: orders}]
    default: other
  orders: {type: hangup, prompts: [orders]}
  other: {type: hangup, prompts: [other]}
  agent: {type: hangup, prompts: [agent]}
"""


def start(text: str = FLOW) -> tuple[FlowRun, list[Action]]:
    flow, _ = parse_flow(text, "yes_no.yaml")
    r = FlowRun(flow)
    return r, r.start(0.0)


def notes(actions: list[Action]) -> dict[str, dict[str, object]]:
    return {a.kind: a.data for a in actions if isinstance(a, Note)}


def test_the_question_listens_for_yes_and_no_and_their_synonyms_during_its_prompt() -> None:
    _, actions = start()
    assert Play(("about_last_order",)) in actions
    listen = [a for a in actions if isinstance(a, Listen)]
    assert len(listen) == 1
    assert set(listen[0].phrases) == {*YES_PHRASES, *NO_PHRASES}
    assert {"yes", "yeah", "correct", "no", "nope"} <= set(listen[0].phrases)
    assert not listen[0].repeat  # one answer, not a sequence
    # a yes/no is short: shorter endpointing than a digit string's 1200 ms / 15 s
    assert (listen[0].end_silence_ms, listen[0].max_utterance_ms) == (800, 5000)


@pytest.mark.parametrize("said, answer, ends_at", [("yes", "yes", "orders"),
                                                   ("yeah", "yes", "orders"),
                                                   ("correct", "yes", "orders"),
                                                   ("no", "no", "other"),
                                                   ("nope", "no", "other")])
def test_a_confident_spoken_answer_barges_in_is_stored_and_the_branch_reads_it(
        said: str, answer: str, ends_at: str) -> None:
    r, _ = start()
    assert StopPlayback() in r.on_speech_started(1.0)
    actions = r.on_speech_result(2.0, [(said, 0.9)])
    assert r.vars["about_order"] == answer
    assert notes(actions)["collect.done"] == {"node": "about_order", "var": "about_order",
                                              "answer": answer}
    assert notes(actions)["speech.result"]["decision"] == "accept"
    assert r.node_name == ends_at


@pytest.mark.parametrize("key, answer", [("1", "yes"), ("2", "no")])
def test_keys_1_and_2_answer_at_the_same_time_and_stop_listening(key: str, answer: str) -> None:
    r, _ = start()
    actions = r.on_digit(key, 1.0)
    assert StopPlayback() in actions and StopListening() in actions
    assert r.vars["about_order"] == answer
    assert r.on_speech_result(2.0, [("no" if answer == "yes" else "yes", 0.9)]) == []


def test_other_keys_are_invalid_and_counted_then_the_question_fails() -> None:
    r, _ = start()
    actions = r.on_digit("7", 1.0)
    assert notes(actions)["collect.invalid"]["count"] == 1
    assert Play(("invalid", "about_last_order")) in actions
    actions = r.on_digit("#", 2.0)
    assert notes(actions)["collect.failed"]["why"] == "invalid"
    assert r.node_name == "agent"


def test_out_of_grammar_or_below_reject_is_a_no_match_with_its_prompts_and_count() -> None:
    r, _ = start()
    actions = r.on_speech_result(2.0, [])  # nothing in the grammar heard
    assert notes(actions)["collect.no_match"]["count"] == 1
    assert Play(("didnt_catch", "about_last_order")) in actions
    assert any(isinstance(a, Listen) for a in actions)  # listens again with the prompt
    actions = r.on_speech_result(4.0, [("yes", 0.05)])  # below reject_below 0.1
    assert notes(actions)["speech.result"]["decision"] == "no_match"
    assert notes(actions)["collect.failed"]["why"] == "no_match"
    assert r.node_name == "agent"
    assert "about_order" not in r.vars


def test_silence_plays_the_no_input_prompts_and_counts() -> None:
    r, _ = start()
    r.on_playback_done(3.0)
    assert r.deadline == pytest.approx(8.0)  # first_digit_timeout_ms 5000
    actions = r.on_timer(8.0)
    assert notes(actions)["collect.no_input"]["count"] == 1
    assert Play(("no_input", "about_last_order")) in actions
    r.on_playback_done(10.0)
    actions = r.on_timer(15.0)
    assert notes(actions)["collect.failed"]["why"] == "no_input"


def test_an_unsure_yes_is_confirmed_by_a_spoken_yes_or_key_1() -> None:
    for answer_by in ("speech", "key"):
        r, _ = start()
        actions = r.on_speech_result(2.0, [("yeah", 0.3)])
        assert notes(actions)["speech.result"]["decision"] == "confirm"
        assert Play(("you_said_yes",)) in actions
        assert any(isinstance(a, Listen) for a in actions)
        assert "about_order" not in r.vars
        if answer_by == "speech":
            r.on_speech_result(4.0, [("correct", 0.2)])
        else:
            r.on_digit("1", 4.0)
        assert r.vars["about_order"] == "yes"
        assert r.node_name == "orders"


def test_a_no_to_the_confirmation_or_silence_asks_the_question_again() -> None:
    r, _ = start()
    r.on_speech_result(2.0, [("yes", 0.3)])
    actions = r.on_speech_result(4.0, [("no", 0.9)])
    assert notes(actions)["collect.rejected"] == {"node": "about_order", "answer": "yes",
                                                  "by": "speech"}
    assert Play(("about_last_order",)) in actions
    r.on_speech_result(5.0, [("yes", 0.3)])
    r.on_playback_done(6.0)
    actions = r.on_timer(11.0)  # the confirmation's timeout_ms 5000
    assert notes(actions)["collect.no_input"]["count"] == 1
    assert Play(("no_input", "about_last_order")) in actions
    assert "about_order" not in r.vars


def test_an_unsure_no_without_a_confirmation_prompt_is_taken() -> None:
    r, _ = start()
    actions = r.on_speech_result(2.0, [("nope", 0.3)])
    assert notes(actions)["speech.result"]["decision"] == "accept"
    assert r.vars["about_order"] == "no"


def test_without_barge_in_keys_wait_for_the_prompt_and_listening_starts_after_it() -> None:
    r, actions = start(FLOW.replace("    max_retries: 1\n",
                                    "    max_retries: 1\n    barge_in: false\n"))
    assert not any(isinstance(a, Listen) for a in actions)
    assert r.on_digit("1", 1.0) == [Note("dtmf", {"digit": "1", "node": "about_order"})]
    actions = r.on_playback_done(3.0)
    assert r.vars["about_order"] == "yes"


def test_a_yes_no_question_with_keys_only_works_in_any_language() -> None:
    text = FLOW.replace("    speech: {en-US: yes_no}\n", "").replace(
        "language: en-US", "language: zh-CN")
    r, actions = start(text)
    assert not any(isinstance(a, Listen) for a in actions)
    r.on_digit("2", 1.0)
    assert r.vars["about_order"] == "no"


@pytest.mark.parametrize(
    "change, message",
    [
        (("    kind: yes_no\n", "    kind: yes_no\n    max_digits: 4\n"),
         r"yes_no.yaml:6: node 'about_order': .*max_digits: only for a digits collect"),
        (("    kind: yes_no\n", "    kind: yes_no\n    confirm: {}\n"),
         r"yes_no.yaml:6: .*confirm: only for a digits collect"),
        (("    kind: yes_no\n", ""),
         r"yes_no.yaml:6: .*confidence, speech_confirm, no_match_prompts: only for a yes/no"),
        (("    kind: yes_no\n", "    kind: yes_no\n    yes_key: \"2\"\n"),
         "yes_key and no_key are both '2'"),
        (("    kind: yes_no\n", "    kind: yes_no\n    no_key: \"x\"\n"),
         r"'x' is not a DTMF key"),
        (("{prompts: {yes: [you_said_yes]}}", "{prompts: {maybe: [you_said_yes]}}"),
         "speech_confirm has prompts for 'maybe'"),
        (("{en-US: yes_no}", "{en-US: digits}"), "speech en-US: digits in a collect of kind "
         "yes_no"),
        (("kind: yes_no", "kind: maybe"), "kind"),
        (("{en-US: yes_no}", "{zh-CN: yes_no}"),
         r"collect by voice \(yes_no\) is in en-US only \(yes/no words"),
    ],
)
def test_bad_yes_no_settings_are_errors_naming_them_and_their_line(
        change: tuple[str, str], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        parse_flow(FLOW.replace(*change), "yes_no.yaml")


def test_check_names_a_yes_no_word_the_recogniser_does_not_know() -> None:
    flow, smap = parse_flow(FLOW, "yes_no.yaml")
    issues = check_flow_speech(flow, smap, {"en-US"},
                               lambda phrases, lang: ["nope"] if "nope" in phrases else [])
    assert [str(i) for i in issues] == [
        "yes_no.yaml:11: node 'about_order': yes/no word 'nope' (en-US) is not in the "
        "recogniser's dictionary"]


EVENTS = st.lists(st.one_of(
    st.tuples(st.just("key"), st.sampled_from(list("0123456789#*"))),
    st.tuples(st.just("done"), st.none()),
    st.tuples(st.just("timer"), st.none()),
    st.tuples(st.just("started"), st.none()),
    st.tuples(st.just("heard"), st.tuples(
        st.sampled_from(["", "yes", "yeah", "correct", "no", "nope", "wrong", "sales"]),
        st.floats(min_value=0.0, max_value=1.0))),
), max_size=40)


@settings(max_examples=300, deadline=None, database=None)
@given(events=EVENTS, barge_in=st.booleans())
def test_any_events_end_with_a_stored_answer_its_branch_or_the_failure_never_two_listens(
        events: list[tuple[str, object]], barge_in: bool) -> None:
    text = FLOW if barge_in else FLOW.replace("    max_retries: 1\n",
                                              "    max_retries: 1\n    barge_in: false\n")
    r, actions = start(text)
    listening = False
    now = 0.0

    def check(out: list[Action]) -> None:
        nonlocal listening
        for a in out:
            if isinstance(a, Listen):
                assert not listening, "a second Listen while one is running"
                listening = True
            elif isinstance(a, StopListening):
                listening = False

    check(actions)
    for kind, arg in events:
        now += 1.0
        if kind == "key":
            out = r.on_digit(str(arg), now)
        elif kind == "done":
            out = r.on_playback_done(now)
        elif kind == "timer":
            now = max(now, r.deadline or now)
            out = r.on_timer(now)
        elif kind == "started":
            out = r.on_speech_started(now)
        else:
            assert isinstance(arg, tuple)
            if r.listening:
                listening = False  # a result ends the running Listen
            out = r.on_speech_result(now, [arg] if arg[0] else [])
        check(out)
        assert listening == r.listening
    if r.node_name in ("orders", "other"):
        assert r.vars["about_order"] == ("yes" if r.node_name == "orders" else "no")
    else:
        assert "about_order" not in r.vars
        assert r.node_name in ("about_order", "agent")
