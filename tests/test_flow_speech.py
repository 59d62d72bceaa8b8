"""Speech in menus, the pure parts: the flow language's speech fields, `ivr flow check`'s
speech checks, and the interpreter's spoken choices, barge-in, confidence thresholds and the
"did you say ...?" confirmation (DTMF keeps working in the same menu)."""

from __future__ import annotations

import pytest

from ivr.flow import FlowError, FlowRun, parse_flow
from ivr.flow.interpreter import Action, Listen, Note, Play, StopListening, StopPlayback
from ivr.flow.model import check_flow_speech

FLOW = """
name: speech
language: en-US
start: menu
nodes:
  menu:
    type: menu
    prompts: [main_menu]
    choices: {"1": sales, "2": support}
    speech:
      en-US:
        sales: ["sales", "buy something"]
        support: ["support", "technical support"]
    barge_in: BARGE_IN
    confidence: {confirm_below: 0.6, reject_below: 0.2}
    speech_confirm: {prompts: {sales: [did_you_say_sales]}}
    no_match_prompts: [sorry]
    invalid_prompts: [invalid]
    max_retries: 1
    on_failure: goodbye
  sales: {type: hangup, prompts: [sales]}
  support: {type: hangup, prompts: [support]}
  goodbye: {type: hangup, prompts: [goodbye]}
"""


def run(barge_in: str = "both") -> tuple[FlowRun, list[Action]]:
    flow, _ = parse_flow(FLOW.replace("BARGE_IN", barge_in), "speech.yaml")
    r = FlowRun(flow)
    return r, r.start(0.0)


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind if isinstance(a, Note) else type(a).__name__ for a in actions]


def test_a_speech_menu_listens_from_its_prompt_with_the_phrases_of_the_call_language() -> None:
    r, actions = run()
    listen = [a for a in actions if isinstance(a, Listen)]
    assert len(listen) == 1
    assert set(listen[0].phrases) == {"sales", "buy something", "support", "technical support"}
    assert listen[0].language == "en-US"
    assert (listen[0].end_silence_ms, listen[0].max_utterance_ms) == (800, 10000)


def test_speech_during_the_prompt_stops_it_and_a_confident_phrase_takes_its_branch() -> None:
    r, _ = run()
    assert StopPlayback() in r.on_speech_started(1.0)
    actions = r.on_speech_result(2.0, [("technical support", 0.9)])
    assert r.node_name == "support"
    assert not r.listening  # one Listen, one utterance
    assert Play(("support",)) in actions
    notes = {a.kind: a.data for a in actions if isinstance(a, Note)}
    assert notes["speech.result"]["decision"] == "accept"
    assert notes["menu.choice"]["target"] == "support"


def test_with_barge_in_dtmf_the_menu_listens_only_once_the_prompt_ended() -> None:
    r, actions = run("dtmf")
    assert not any(isinstance(a, Listen) for a in actions)
    assert any(isinstance(a, Listen) for a in r.on_playback_done(3.0))


def test_with_barge_in_speech_keys_wait_for_the_prompt_but_voice_stops_it() -> None:
    r, _ = run("speech")
    assert StopPlayback() not in r.on_digit("1", 0.5)  # kept as type-ahead
    assert StopPlayback() in r.on_speech_started(1.0)


def test_a_key_still_chooses_in_a_speech_menu() -> None:
    r, _ = run()
    actions = r.on_digit("1", 1.0)
    assert r.node_name == "sales"
    assert kinds(actions)[:3] == ["dtmf", "StopPlayback", "menu.choice"]
    assert StopListening() in actions


def test_low_confidence_asks_did_you_say_and_a_spoken_yes_takes_the_branch() -> None:
    r, _ = run()
    r.on_speech_started(1.0)
    actions = r.on_speech_result(2.0, [("sales", 0.4)])
    assert Play(("did_you_say_sales",)) in actions
    listen = [a for a in actions if isinstance(a, Listen)]
    assert listen and "yes" in listen[0].phrases and "no" in listen[0].phrases
    assert r.node_name == "menu"
    r.on_speech_result(3.0, [("yes", 0.9)])
    assert r.node_name == "sales"


@pytest.mark.parametrize("answer", ["key 1", "key 2", "spoken no", "silence"])
def test_the_confirmation_takes_keys_1_and_2_a_spoken_no_and_silence(answer: str) -> None:
    r, _ = run()
    r.on_speech_result(2.0, [("sales", 0.4)])
    if answer == "key 1":
        r.on_digit("1", 3.0)
    elif answer == "key 2":
        actions = r.on_digit("2", 3.0)
    elif answer == "spoken no":
        actions = r.on_speech_result(3.0, [("no", 0.8)])
    else:
        r.on_playback_done(3.0)
        actions = r.on_timer(9.0)
    if answer == "key 1":
        assert r.node_name == "sales"
    else:  # back to the menu, listening again
        assert r.node_name == "menu"
        assert Play(("main_menu",)) in actions
        assert any(isinstance(a, Listen) for a in actions)


def test_below_reject_or_out_of_grammar_is_a_no_match_then_the_menu_fails() -> None:
    r, _ = run()
    actions = r.on_speech_result(2.0, [("sales", 0.1)])
    assert Play(("sorry", "main_menu")) in actions
    assert any(isinstance(a, Listen) for a in actions)
    r.on_speech_result(4.0, [])
    assert r.node_name == "goodbye"


def test_a_result_with_no_menu_listening_is_ignored() -> None:
    r, _ = run()
    r.on_digit("2", 1.0)
    assert r.on_speech_result(2.0, [("sales", 0.9)]) == []
    assert r.on_speech_started(2.0) == []


def test_in_a_language_without_phrases_the_menu_is_dtmf_only() -> None:
    text = FLOW.replace("BARGE_IN", "both").replace("language: en-US", "language: zh-CN").replace(
        "      en-US:", "      zh-CN:")
    flow, _ = parse_flow(text.replace("      zh-CN:", "      zh-CN:", 1), "x.yaml")
    r = FlowRun(flow)
    r.language = "en-US"
    assert not any(isinstance(a, Listen) for a in r.start(0.0))


def test_barge_in_true_and_false_still_mean_keys_or_nothing() -> None:
    for old, new in (("true", "both"), ("false", "none")):
        flow, _ = parse_flow(FLOW.replace("BARGE_IN", old), "x.yaml")
        assert flow.nodes["menu"].barge_in == new  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change, message",
    [
        (("confidence: {confirm_below: 0.6, reject_below: 0.2}",
          "confidence: {confirm_below: 0.2, reject_below: 0.6}"), r"reject_below \(0.6\) is above"),
        (("barge_in: both", "barge_in: sometimes"), "barge_in"),
        (('sales: ["sales", "buy something"]', "sales: []"), "one or more non-empty phrases"),
        (("speech_confirm: {prompts: {sales:", "speech_confirm: {prompts: {goodbye:"),
         "speech_confirm has prompts for 'goodbye', which no speech phrase leads to"),
        (("      en-US:\n", "      ko-KR:\n"), "speech phrases in ko-KR, a language this flow "
         "never speaks"),
    ],
)
def test_bad_speech_fields_are_errors_naming_them(change: tuple[str, str], message: str) -> None:
    text = FLOW.replace("BARGE_IN", "both").replace(*change)
    with pytest.raises(FlowError, match=message):
        parse_flow(text, "speech.yaml")


def test_check_names_a_phrase_word_the_recogniser_does_not_know() -> None:
    flow, smap = parse_flow(FLOW.replace("BARGE_IN", "both").replace('"buy something"',
                                                                 '"buy somethingz"'), "s.yaml")
    known = {"sales", "buy", "support", "technical", "yes", "yeah", "please", "correct",
             "right", "no", "nope", "thanks", "wrong"}
    issues = check_flow_speech(flow, smap, {"en-US"},
                               lambda phrases, lang: sorted({w for p in phrases
                                                             for w in p.split()} - known))
    assert [str(i) for i in issues] == [
        "s.yaml:10: node 'menu': speech phrase word 'somethingz' (en-US) is not in the "
        "recogniser's dictionary"]


def test_check_says_a_speech_menu_in_mandarin_needs_a_model() -> None:
    text = FLOW.replace("BARGE_IN", "both").replace("language: en-US", "language: zh-CN").replace(
        "      en-US:", "      zh-CN:")
    flow, smap = parse_flow(text, "s.yaml")
    issues = check_flow_speech(flow, smap, {"en-US"}, None)
    assert len(issues) == 1
    assert "a speech menu in zh-CN, but no recogniser model for zh-CN is configured " \
           "(speech.models) (Mandarin has no recogniser model" in str(issues[0])


COLLECT = """
name: voice-digits
language: en-US
start: account
nodes:
  account:
    type: collect
    prompts: [enter_account]
    var: account
    min_digits: 4
    max_digits: 8
    speech: {en-US: digits}
    confirm: {}
    invalid_prompts: [invalid]
    next: done
    on_failure: done
  done: {type: hangup}
"""


def test_collect_by_voice_listens_for_digit_sequences_and_reads_them_back() -> None:
    flow, _ = parse_flow(COLLECT, "c.yaml")
    r = FlowRun(flow)
    listen = [a for a in r.start(0.0) if isinstance(a, Listen)]
    assert listen and listen[0].repeat and {"one", "oh", "nine"} <= set(listen[0].phrases)
    assert StopPlayback() in r.on_speech_started(1.0)
    actions = r.on_speech_result(3.0, [("four one five five", 0.3)])
    assert Play(("you_entered", "digit_4", "digit_1", "digit_5", "digit_5",
                 "confirm_correct")) in actions
    r.on_digit("1", 4.0)
    assert r.vars["account"] == "4155"


def test_collect_by_voice_with_too_few_digits_or_none_retries() -> None:
    flow, _ = parse_flow(COLLECT, "c.yaml")
    r = FlowRun(flow)
    r.start(0.0)
    actions = r.on_speech_result(3.0, [("four one", 0.3)])
    assert Play(("invalid", "enter_account")) in actions
    assert any(isinstance(a, Listen) for a in actions)
    actions = r.on_speech_result(5.0, [])
    assert {a.kind: a.data for a in actions if isinstance(a, Note)}["collect.invalid"][
        "problem"] == "no digits heard"


def test_keys_typed_in_a_voice_collect_stop_listening_and_win() -> None:
    flow, _ = parse_flow(COLLECT, "c.yaml")
    r = FlowRun(flow)
    r.start(0.0)
    assert StopListening() in r.on_digit("7", 1.0)
    assert r.on_speech_result(2.0, [("one two three four", 0.9)]) == []


def test_a_sensitive_collect_by_voice_is_refused() -> None:
    with pytest.raises(FlowError, match="not sent to the recogniser either: drop speech"):
        parse_flow(COLLECT.replace("    confirm: {}\n", "    sensitive: true\n"), "c.yaml")


def test_collect_by_voice_outside_english_is_an_error() -> None:
    text = COLLECT.replace("language: en-US", "language: zh-CN").replace(
        "{en-US: digits}", "{zh-CN: digits}")
    with pytest.raises(FlowError, match=r"collect by voice \(digits\) is in en-US only"):
        parse_flow(text, "c.yaml")
