"""The flow language's node types (collect, say, set, branch, lookup, queue, transfer, survey,
language, record) as a flow designer expects them to behave, Asterisk Read() and FreeSWITCH
play_and_get_digits being the bar for ``collect``.

A fake driver feeds :class:`ivr.flow.interpreter.FlowRun` events at a fake monotonic ``now``
with a fake wall clock (no media, no network), the way ``ivr.session`` does: a playback that
was stopped never reports its end, results of lookups, queues, transfers and recordings come
back through the ``on_*`` methods. Most cases are tables of a script and the actions expected.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.flow import Flow, FlowRun, Hangup, Play, RunState, parse_flow
from ivr.flow.interpreter import (
    Lookup,
    QueueCall,
    StartRecording,
    Transfer,
)
from ivr.flow.model import DTMF_KEYS, LookupNode, QueueNode, RecordNode, TransferNode
from ivr.say import say
from tests.flow_driver import T0, FakeCall

CALLER = "+8613800000000"


# --- the fake driver ---------------------------------------------------------------------------


# --- flows -------------------------------------------------------------------------------------

_TARGET_FIELDS = ("next", "on_failure", "on_no_input", "on_unavailable", "open", "closed",
                  "default", "after_agent")


def make_flow(nodes: dict[str, dict[str, Any]], *, language: str = "en-US") -> Flow:
    """A flow from its nodes (the first one starts); every target that is not a node becomes a
    hangup node whose reason is its name, so ``hangup done`` says the run went to ``done``."""
    nodes = dict(nodes)
    targets: list[str] = []
    for node in nodes.values():
        targets += [node[f] for f in _TARGET_FIELDS if isinstance(node.get(f), str)]
        targets += [case["goto"] for case in node.get("cases", [])]
        targets += list(node.get("choices", {}).values())
        targets += list(node.get("exit_keys", {}).values())
    for target in targets:
        nodes.setdefault(target, {"type": "hangup", "reason": target})
    data = {"name": "nodes", "language": language, "start": next(iter(nodes)), "nodes": nodes}
    return parse_flow(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "nodes.yaml")[0]


# --- collect -----------------------------------------------------------------------------------

ASK = "play enter_account"
INVALID = "play invalid,enter_account"
NO_INPUT = "play no_input,enter_account"
CONFIRM_123 = "play you_entered,digit_1,digit_2,digit_3,confirm_correct"


def collect_flow(*, intro: bool | None = None, **options: Any) -> Flow:
    """ask (collect 3-6 digits into acct, 2 retries) -> done / failed; ``intro``: a play node
    before it, with barge-in (True) or without (False)."""
    node = {
        "type": "collect", "prompts": ["enter_account"], "var": "acct", "min_digits": 3,
        "max_digits": 6, "first_digit_timeout_ms": 5000, "inter_digit_timeout_ms": 2000,
        "invalid_prompts": ["invalid"], "no_input_prompts": ["no_input"], "max_retries": 2,
        "next": "done", "on_failure": "failed", **options,
    }
    nodes: dict[str, dict[str, Any]] = {}
    if intro is not None:
        nodes["intro"] = {"type": "play", "prompts": ["welcome"], "barge_in": intro,
                          "next": "ask"}
    nodes["ask"] = node
    return make_flow(nodes)


PLAIN = collect_flow()
CONFIRMING = collect_flow(confirm={})
LUHN = collect_flow(max_digits=16, validate={"luhn": True})

# (id, flow, script, visible actions, acct afterwards or None, final state)
COLLECT_CASES: list[tuple[str, Flow, str, list[str], str | None, RunState]] = [
    ("terminator_ends_input",
     PLAIN, "start done 1 2 3 #", [ASK, "hangup done"], "123", RunState.ENDED),
    ("barge_in_key_stops_the_prompt_and_is_the_first_digit",
     PLAIN, "start 1 2 3 #", [ASK, "stop", "hangup done"], "123", RunState.ENDED),
    ("max_digits_ends_input_without_terminator",
     PLAIN, "start done 1 2 3 4 5 6", [ASK, "hangup done"], "123456", RunState.ENDED),
    ("inter_digit_timeout_ends_input",
     PLAIN, "start done 1 2 3 +2", [ASK, "hangup done"], "123", RunState.ENDED),
    ("inter_digit_timer_restarts_with_each_digit",
     PLAIN, "start done 1 +1.5 2 +1.5 3 +1.9", [ASK], None, RunState.COLLECTING),
    ("first_digit_waits_first_digit_timeout_not_inter_digit",
     PLAIN, "start done +4.9", [ASK], None, RunState.COLLECTING),
    ("first_digit_timeout_retries_with_no_input_prompts_then_prompts",
     PLAIN, "start done +5", [ASK, NO_INPUT], None, RunState.PROMPTING),
    ("no_input_retries_exhausted_go_to_on_failure",
     PLAIN, "start done fire done fire done fire", [ASK, NO_INPUT, NO_INPUT, "hangup failed"],
     None, RunState.ENDED),
    ("min_digits_not_met_at_terminator_is_invalid",
     PLAIN, "start done 1 2 #", [ASK, INVALID], None, RunState.PROMPTING),
    ("min_digits_not_met_at_inter_digit_timeout_is_invalid",
     PLAIN, "start done 1 2 fire", [ASK, INVALID], None, RunState.PROMPTING),
    ("terminator_alone_is_invalid",
     PLAIN, "start done #", [ASK, INVALID], None, RunState.PROMPTING),
    ("invalid_retries_exhausted_go_to_on_failure",
     PLAIN, "start done 1 # done 2 # done 3 #", [ASK, INVALID, INVALID, "hangup failed"], None,
     RunState.ENDED),
    ("a_retry_can_succeed",
     PLAIN, "start done 1 # done 4 5 6 #", [ASK, INVALID, "hangup done"], "456",
     RunState.ENDED),
    ("invalid_and_no_input_are_counted_apart",
     PLAIN, "start done 1 # done fire done 2 # done fire",
     [ASK, INVALID, NO_INPUT, INVALID, NO_INPUT], None, RunState.PROMPTING),
    ("a_key_during_the_retry_prompt_barges_in",
     PLAIN, "start done 1 # 7 8 9 #", [ASK, INVALID, "stop", "hangup done"], "789",
     RunState.ENDED),
    ("star_terminator",
     collect_flow(terminator="*"), "start done 1 2 3 *", [ASK, "hangup done"], "123",
     RunState.ENDED),
    ("without_terminator_pound_is_collected_like_a_digit",
     collect_flow(terminator=None, max_digits=4), "start done 1 2 # 3", [ASK, "hangup done"],
     "12#3", RunState.ENDED),
    ("regex_validation_accepts_a_match",
     collect_flow(validate={"regex": "9[0-9]+"}), "start done 9 1 2 #", [ASK, "hangup done"],
     "912", RunState.ENDED),
    ("regex_validation_must_match_all_the_digits",
     collect_flow(validate={"regex": "9[0-9]+"}), "start done 1 9 2 #", [ASK, INVALID], None,
     RunState.PROMPTING),
    ("luhn_validation_accepts_a_valid_number",
     LUHN, "start done 7 9 9 2 7 3 9 8 7 1 3 #", [ASK, "hangup done"], "79927398713",
     RunState.ENDED),
    ("luhn_validation_rejects_a_bad_check_digit",
     LUHN, "start done 7 9 9 2 7 3 9 8 7 1 0 #", [ASK, INVALID], None, RunState.PROMPTING),
    ("regex_and_luhn_must_both_hold",
     collect_flow(max_digits=16, validate={"regex": "4[0-9]+", "luhn": True}),
     "start done 7 9 9 2 7 3 9 8 7 1 3 #", [ASK, INVALID], None, RunState.PROMPTING),
    ("barge_in_false_keeps_digits_as_typeahead_until_the_prompt_ends",
     collect_flow(barge_in=False), "start 1 2 3 # done", [ASK, "hangup done"], "123",
     RunState.ENDED),
    ("barge_in_false_typeahead_then_more_digits",
     collect_flow(barge_in=False), "start 1 2 done 3 #", [ASK, "hangup done"], "123",
     RunState.ENDED),
    ("barge_in_false_typeahead_then_inter_digit_timeout",
     collect_flow(barge_in=False), "start 1 2 3 done +2", [ASK, "hangup done"], "123",
     RunState.ENDED),
    ("barge_in_false_short_typeahead_is_invalid_at_inter_digit_timeout",
     collect_flow(barge_in=False), "start 1 2 done fire", [ASK, INVALID], None,
     RunState.PROMPTING),
    ("typeahead_from_a_barge_in_play_is_the_first_digit_and_skips_the_prompt",
     collect_flow(intro=True), "start 5 6 7 #", ["play welcome", "stop", "hangup done"], "567",
     RunState.ENDED),
    ("typeahead_from_a_barge_in_play_then_inter_digit_timeout",
     collect_flow(intro=True), "start 5 6 7 +2", ["play welcome", "stop", "hangup done"],
     "567", RunState.ENDED),
    ("keys_during_a_play_without_barge_in_are_dropped",
     collect_flow(intro=False), "start 5 6 done", ["play welcome", ASK], None,
     RunState.PROMPTING),
    ("confirm_plays_the_digits_and_yes_accepts",
     CONFIRMING, "start done 1 2 3 # done 1", [ASK, CONFIRM_123, "hangup done"], "123",
     RunState.ENDED),
    ("confirm_yes_during_the_confirmation_stops_it",
     CONFIRMING, "start done 1 2 3 # 1", [ASK, CONFIRM_123, "stop", "hangup done"], "123",
     RunState.ENDED),
    ("confirm_no_collects_again",
     CONFIRMING, "start done 1 2 3 # done 2", [ASK, CONFIRM_123, ASK], None,
     RunState.PROMPTING),
    ("confirm_no_then_new_digits",
     CONFIRMING, "start done 1 2 3 # done 2 done 4 5 6 # done 1",
     [ASK, CONFIRM_123, ASK, "play you_entered,digit_4,digit_5,digit_6,confirm_correct",
      "hangup done"], "456", RunState.ENDED),
    ("confirm_no_counts_as_a_retry",
     CONFIRMING, "start done 1 2 3 # done 2 done 1 2 3 # done 2 done 1 2 3 # done 2",
     [ASK, CONFIRM_123, ASK, CONFIRM_123, ASK, CONFIRM_123, "hangup failed"], None,
     RunState.ENDED),
    ("confirm_no_and_invalid_input_share_the_retry_count",
     CONFIRMING, "start done 1 # done 1 2 3 # done 2 done 1 #",
     [ASK, INVALID, CONFIRM_123, ASK, "hangup failed"], None, RunState.ENDED),
    ("confirm_timeout_is_a_no_input_retry",
     CONFIRMING, "start done 1 2 3 # done fire", [ASK, CONFIRM_123, NO_INPUT], None,
     RunState.PROMPTING),
    ("confirm_ignores_other_keys_after_the_confirmation",
     CONFIRMING, "start done 1 2 3 # done 7 1", [ASK, CONFIRM_123, "hangup done"], "123",
     RunState.ENDED),
    ("confirm_other_key_during_the_confirmation_does_not_cut_it",
     CONFIRMING, "start done 1 2 3 # 7 done 1", [ASK, CONFIRM_123, "hangup done"], "123",
     RunState.ENDED),
    ("confirm_with_own_prompts_and_keys",
     collect_flow(confirm={"prompts": ["you_said"], "after_prompts": ["press_star"],
                           "yes_key": "*", "no_key": "0"}),
     "start done 4 5 6 # done *",
     [ASK, "play you_said,digit_4,digit_5,digit_6,press_star", "hangup done"], "456",
     RunState.ENDED),
    ("confirm_with_own_no_key",
     collect_flow(confirm={"yes_key": "*", "no_key": "0"}), "start done 4 5 6 # done 0",
     [ASK, "play you_entered,digit_4,digit_5,digit_6,confirm_correct", ASK], None,
     RunState.PROMPTING),
]


@pytest.mark.parametrize(("flow", "script", "expected", "acct", "state"),
                         [pytest.param(*c[1:], id=c[0]) for c in COLLECT_CASES])
def test_collect(flow: Flow, script: str, expected: list[str], acct: str | None,
                 state: RunState) -> None:
    call = FakeCall(flow).play(script)
    assert call.visible == expected
    assert call.run.vars.get("acct") == acct
    assert call.run.state is state
    assert len(call.hangups()) <= 1
    if acct is not None:
        assert call.notes("collect.done") == [{"node": "ask", "var": "acct", "digits": acct}]
    else:
        assert call.notes("collect.done") == []


def test_collect_timers_start_when_the_prompt_ends_and_at_each_digit() -> None:
    call = FakeCall(PLAIN).play("start")
    assert call.run.deadline is None  # no timer while the prompt plays
    call.now = T0 + 3.0
    call.play("done")
    assert call.run.state is RunState.COLLECTING
    assert call.run.deadline == T0 + 3.0 + 5.0  # first_digit_timeout_ms
    call.now = T0 + 4.0
    call.play("1")
    assert call.run.deadline == T0 + 4.0 + 2.0  # inter_digit_timeout_ms


def test_collect_confirmation_waits_its_own_timeout() -> None:
    call = FakeCall(collect_flow(confirm={"timeout_ms": 3000})).play("start done 1 2 3 # done")
    assert call.run.state is RunState.WAITING
    call.play("+2.5")
    assert call.visible[-1] == CONFIRM_123
    call.play("+0.5")
    assert call.visible[-1] == NO_INPUT


def test_collect_notes_say_why_input_was_refused_and_why_it_failed() -> None:
    call = FakeCall(PLAIN).play("start done 1 2 # done fire done 4 # done 5 #")
    # each refusal is one note: what was typed, why, and how many refusals so far
    invalid = call.notes("collect.invalid")
    assert [(n["digits"], n["problem"], n["count"]) for n in invalid] == [
        ("12", "2 digits, at least 3 wanted", 1), ("4", "1 digits, at least 3 wanted", 2),
        ("5", "1 digits, at least 3 wanted", 3)]
    assert call.notes("collect.no_input") == [{"node": "ask", "count": 1}]
    assert call.notes("collect.failed") == [{"node": "ask", "why": "invalid"}]
    assert "acct" not in call.run.vars
    luhn = FakeCall(LUHN).play("start done 1 2 3 4 #")
    assert luhn.notes("collect.invalid")[0]["problem"] == "fails the Luhn check"


def test_collect_confirm_no_is_noted_and_the_variable_is_only_set_on_yes() -> None:
    call = FakeCall(CONFIRMING).play("start done 1 2 3 # done")
    assert "acct" not in call.run.vars
    call.play("2")
    assert call.notes("collect.rejected") == [{"node": "ask"}]
    assert "acct" not in call.run.vars
    call.play("done 9 8 7 # done 1")
    assert call.run.vars["acct"] == "987"
    assert call.notes("collect.done") == [{"node": "ask", "var": "acct", "digits": "987"}]


def test_collect_retries_count_afresh_when_the_node_is_entered_again() -> None:
    flow = make_flow({
        "ask": {"type": "collect", "prompts": ["enter_account"], "var": "acct",
                "min_digits": 2, "max_retries": 1, "next": "again", "on_failure": "failed"},
        "again": {"type": "play", "prompts": ["beep"], "next": "ask"},
    })
    call = FakeCall(flow).play("start done 1 # done 1 2 # done done 3 # done 4 5 #")
    assert call.hangups() == []
    assert call.run.vars["acct"] == "45"


def test_collect_typeahead_from_a_barge_in_play_is_not_lost() -> None:
    """A key that barged into a play node before the collect is its first digit."""
    call = FakeCall(collect_flow(intro=True)).play("start 4")
    assert call.run.state is RunState.COLLECTING
    assert call.run.typeahead == []
    assert call.run.deadline == T0 + 2.0


# --- say ---------------------------------------------------------------------------------------

# (kind, the node's value, the value ivr.say.say is given)
SAY_VALUES: list[tuple[str, str, Any]] = [
    ("number", "1234", 1234),
    ("number", "0", 0),
    ("number", "3.5", Decimal("3.5")),
    ("digits", "0451", "0451"),
    ("money", "12.05", Decimal("12.05")),
    ("money", "2", Decimal(2)),
    ("date", "2026-03-05", dt.date(2026, 3, 5)),
    ("time", "14:30", dt.time(14, 30)),
    ("time", "09:05", dt.time(9, 5)),
    ("datetime", "2026-03-05T09:05", dt.datetime(2026, 3, 5, 9, 5)),
    ("queue_position", "3", 3),
    ("wait_time", "45", 45),
    ("wait_time", "150", 150),
]


def say_flow(kind: str, value: str, *, language: str | None = None,
             set_var: bool = False) -> Flow:
    nodes: dict[str, dict[str, Any]] = {}
    if language is not None:
        nodes["lang"] = {"type": "language", "language": language, "next": "s"}
    if set_var:
        nodes["v"] = {"type": "set", "vars": {"v": value}, "next": "s"}
        value = "{v}"
        if language is not None:
            nodes["lang"]["next"] = "v"
    nodes["s"] = {"type": "say", "kind": kind, "value": value, "prompts": ["pre"],
                  "next": "done"}
    return make_flow(nodes)


@pytest.mark.parametrize("source", ["literal", "set_variable"])
@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
@pytest.mark.parametrize(("kind", "value", "typed"), SAY_VALUES,
                         ids=[f"{k}-{v}" for k, v, _ in SAY_VALUES])
def test_say_plays_the_node_prompts_then_the_grammar(kind: str, value: str, typed: Any,
                                                      language: str, source: str) -> None:
    flow = say_flow(kind, value, language=None if language == "en-US" else language,
                    set_var=source == "set_variable")
    call = FakeCall(flow).play("start")
    assert call.run.language == language
    expected = ("pre", *say(kind, typed, language))
    assert call.actions[-1] == Play(expected)
    call.play("done")
    assert call.visible == ["play " + ",".join(expected), "hangup done"]
    assert call.notes("say.error") == []


def test_say_grammar_outputs_spot_checks() -> None:
    """The comparison above is with ivr.say; pin a few outputs so both cannot drift together."""
    def said(kind: str, value: str, language: str | None = None) -> tuple[str, ...]:
        call = FakeCall(say_flow(kind, value, language=language)).play("start")
        play = call.actions[-1]
        assert isinstance(play, Play)
        return play.prompts

    assert said("number", "1234") == ("pre", "digit_1", "thousand", "digit_2", "hundred",
                                      "num_30", "digit_4")
    assert said("number", "1234", "zh-CN") == ("pre", "digit_1", "thousand", "liang",
                                               "hundred", "digit_3", "num_10", "digit_4")
    assert said("money", "12.05", "zh-CN") == ("pre", "num_10", "digit_2", "yuan", "digit_0",
                                               "digit_5", "fen")
    assert said("digits", "0451") == ("pre", "digit_0", "digit_4", "digit_5", "digit_1")
    assert said("queue_position", "3") == ("pre", "you_are_caller", "digit_3", "in_queue")


def test_say_a_variable_filled_by_collect() -> None:
    flow = make_flow({
        "ask": {"type": "collect", "prompts": ["enter_account"], "var": "acct",
                "next": "echo", "on_failure": "failed"},
        "echo": {"type": "say", "kind": "digits", "value": "{acct}", "prompts": ["you_entered"],
                 "next": "count"},
        "count": {"type": "say", "kind": "number", "value": "{acct}", "next": "done"},
    })
    call = FakeCall(flow).play("start done 4 2 # done done")
    assert call.visible == [ASK, "play you_entered,digit_4,digit_2",
                            "play " + ",".join(say("number", 42, "en-US")), "hangup done"]


def test_say_without_prompts_plays_the_value_alone() -> None:
    flow = make_flow({"s": {"type": "say", "kind": "number", "value": "7", "next": "done"}})
    assert FakeCall(flow).play("start done").visible == ["play digit_7", "hangup done"]


BAD_SAY = [
    ("number", "abc", None),
    ("number", "{missing}", None),
    ("number", "-5", "zh-CN"),  # no 'minus' prompt in the shipped sets
    ("digits", "12a", None),
    ("money", "1.2.3", None),
    ("money", "NaN", None),
    ("date", "2026-13-01", None),
    ("time", "25:00", None),
    ("datetime", "tomorrow", None),
    ("queue_position", "0", None),
    ("queue_position", "2.5", None),
    ("wait_time", "-5", None),
]


@pytest.mark.parametrize(("kind", "value", "language"), BAD_SAY,
                         ids=[f"{k}-{v}" for k, v, _ in BAD_SAY])
def test_say_a_bad_value_notes_say_error_and_goes_on_without_playing(
    kind: str, value: str, language: str | None,
) -> None:
    call = FakeCall(say_flow(kind, value, language=language)).play("start")
    assert call.visible == ["hangup done"]  # not even the node's own prompts
    errors = call.notes("say.error")
    assert len(errors) == 1
    assert errors[0]["node"] == "s"
    assert errors[0]["value"] == ("" if value == "{missing}" else value)
    assert errors[0]["error"]


# --- set ---------------------------------------------------------------------------------------


def test_set_renders_templates_with_variables_unknown_ones_empty() -> None:
    flow = make_flow({"s": {"type": "set", "next": "done", "vars": {
        "greeting": "Hello {caller}!", "blank": "[{nope}]", "plain": "no braces",
        "twice": "{caller}/{caller}", "not_a_ref": "{1x} { caller }",
    }}})
    call = FakeCall(flow, {"caller": CALLER}).play("start")
    assert call.run.vars["greeting"] == f"Hello {CALLER}!"
    assert call.run.vars["blank"] == "[]"
    assert call.run.vars["plain"] == "no braces"
    assert call.run.vars["twice"] == f"{CALLER}/{CALLER}"
    assert call.run.vars["not_a_ref"] == "{1x} { caller }"
    assert call.visible == ["hangup done"]
    assert call.notes("vars.set") == [{"node": "s", "vars": {
        "greeting": f"Hello {CALLER}!", "blank": "[]", "plain": "no braces",
        "twice": f"{CALLER}/{CALLER}", "not_a_ref": "{1x} { caller }"}}]


def test_set_nodes_chain_and_each_sees_what_came_before() -> None:
    flow = make_flow({
        "one": {"type": "set", "vars": {"a": "x", "b": "{a}1"}, "next": "two"},
        "two": {"type": "set", "vars": {"c": "{b}y", "a": "{c}z", "caller": "hidden"},
                "next": "three"},
        "three": {"type": "goto", "next": "four"},
        "four": {"type": "set", "vars": {"d": "{a}-{caller}-{language}"}, "next": "done"},
    })
    call = FakeCall(flow, {"caller": CALLER}).play("start")
    assert call.run.vars == {"language": "en-US", "caller": "hidden", "a": "x1yz", "b": "x1",
                             "c": "x1y", "d": "x1yz-hidden-en-US"}
    assert [n["node"] for n in call.notes("node")] == ["one", "two", "three", "four", "done"]
    assert call.visible == ["hangup done"]


# --- branch ------------------------------------------------------------------------------------

ROUTES = make_flow({"route": {"type": "branch", "default": "other", "cases": [
    {"var": "caller", "equals": CALLER, "goto": "vip"},
    {"var": "caller", "one_of": ["100", "200"], "goto": "internal"},
    {"var": "caller", "prefix": "+86", "goto": "china"},
    {"var": "caller", "matches": r"\+1[0-9]{10}", "goto": "nanp"},
    {"var": "caller", "prefix": "+44", "matches": ".*9", "goto": "uk_nine"},
    {"var": "account", "empty": True, "goto": "unknown"},
    {"var": "tier", "empty": False, "goto": "has_tier"},
]}})

# (id, variables, target)
BRANCH_CASES: list[tuple[str, dict[str, str], str]] = [
    ("equals_wins_over_a_later_prefix", {"caller": CALLER}, "vip"),
    ("one_of", {"caller": "200"}, "internal"),
    ("one_of_is_exact", {"caller": "2000", "account": "1"}, "other"),
    ("prefix", {"caller": "+8610123"}, "china"),
    ("matches_is_a_full_match", {"caller": "+12125550100"}, "nanp"),
    ("matches_does_not_take_a_partial_match", {"caller": "+121255501009", "account": "1"},
     "other"),
    ("all_tests_of_a_case_must_hold", {"caller": "+4479", "account": "1"}, "uk_nine"),
    ("one_failing_test_fails_the_case", {"caller": "+4478", "account": "1"}, "other"),
    ("empty_true_holds_for_a_missing_variable", {"caller": "555"}, "unknown"),
    ("empty_true_holds_for_an_empty_variable", {"caller": "555", "account": ""}, "unknown"),
    ("empty_false_holds_for_a_value", {"caller": "555", "account": "1", "tier": "gold"},
     "has_tier"),
    ("default_when_no_case_holds", {"caller": "555", "account": "1"}, "other"),
    ("missing_caller_is_empty", {"account": "1"}, "other"),
]


@pytest.mark.parametrize(("variables", "target"), [pytest.param(*c[1:], id=c[0])
                                                   for c in BRANCH_CASES])
def test_branch_cases_in_order(variables: dict[str, str], target: str) -> None:
    call = FakeCall(ROUTES, variables).play("start")
    assert call.visible == [f"hangup {target}"]
    assert call.notes("branch")[0]["target"] == target


def test_branch_on_a_variable_set_by_an_earlier_node() -> None:
    flow = make_flow({
        "s": {"type": "set", "vars": {"lang_pick": "{caller}"}, "next": "b"},
        "b": {"type": "branch", "cases": [{"var": "lang_pick", "prefix": "+86", "goto": "zh"}],
              "default": "en"},
    })
    assert FakeCall(flow, {"caller": CALLER}).play("start").visible == ["hangup zh"]
    assert FakeCall(flow, {"caller": "+1"}).play("start").visible == ["hangup en"]


def test_branch_without_default_and_no_case_ends_the_call_with_flow_error() -> None:
    """A dead end: nothing to go to. The call must not be left hanging."""
    flow = make_flow({
        "intro": {"type": "play", "prompts": ["welcome"], "next": "b"},
        "b": {"type": "branch", "cases": [{"var": "caller", "equals": "1", "goto": "one"}]},
    })
    call = FakeCall(flow, {"caller": "2"}).play("start done")
    assert call.visible == ["play welcome", "hangup flow_error"]
    assert call.run.ended
    assert call.notes("flow.error") == [{"node": "b", "error": "no case held, no default"}]
    # ... also when it is the first node, and when business hours lead nowhere
    first = make_flow({"b": {"type": "branch", "cases": [
        {"var": "caller", "equals": "1", "goto": "one"}]}})
    assert FakeCall(first, {"caller": "2"}).play("start").visible == ["hangup flow_error"]
    hours = make_flow({"b": {"type": "branch", "hours": SHANGHAI, "open": "open_line"}})
    call = FakeCall(hours, wall=dt.datetime(2026, 3, 8, 3, 0, tzinfo=dt.UTC)).play("start")
    assert call.visible == ["hangup flow_error"]


SHANGHAI = {"timezone": "Asia/Shanghai", "hours": {"mon-fri": "09:00-18:00",
                                                   "sat": "10:00-14:00"},
            "holidays": ["2026-10-01"]}
NEW_YORK = {"timezone": "America/New_York", "hours": {"mon-fri": "09:00-17:00"}}
NIGHT = {"timezone": "America/New_York", "hours": {"fri": "22:00-06:00"},
         "holidays": ["2026-03-13"]}


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


# (id, business hours, wall clock, open)
HOURS_CASES: list[tuple[str, dict[str, Any], dt.datetime, bool]] = [
    ("shanghai_weekday_open", SHANGHAI, utc(2026, 3, 4, 2, 0), True),  # Wed 10:00
    ("shanghai_opens_on_the_minute", SHANGHAI, utc(2026, 3, 4, 1, 0), True),  # 09:00
    ("shanghai_before_opening", SHANGHAI, utc(2026, 3, 4, 0, 59), False),  # 08:59
    ("shanghai_closing_time_is_closed", SHANGHAI, utc(2026, 3, 4, 10, 0), False),  # 18:00
    ("shanghai_local_time_not_utc", SHANGHAI, utc(2026, 3, 4, 14, 0), False),  # 22:00
    ("shanghai_local_date_not_utc", SHANGHAI, utc(2026, 3, 6, 16, 30), False),  # Sat 00:30
    ("shanghai_saturday_open", SHANGHAI, utc(2026, 3, 7, 3, 0), True),  # Sat 11:00
    ("shanghai_saturday_after_hours", SHANGHAI, utc(2026, 3, 7, 7, 0), False),  # Sat 15:00
    ("shanghai_sunday_closed", SHANGHAI, utc(2026, 3, 8, 3, 0), False),  # Sun 11:00
    ("shanghai_holiday_closed", SHANGHAI, utc(2026, 10, 1, 3, 0), False),  # Thu 11:00
    ("shanghai_day_after_holiday_open", SHANGHAI, utc(2026, 10, 2, 3, 0), True),
    ("shanghai_wall_clock_in_another_zone",
     SHANGHAI, dt.datetime(2026, 3, 3, 21, 0, tzinfo=ZoneInfo("America/New_York")), True),
    ("new_york_winter_open", NEW_YORK, utc(2026, 3, 4, 14, 0), True),  # 09:00 EST
    ("new_york_winter_before_opening", NEW_YORK, utc(2026, 3, 4, 13, 0), False),  # 08:00 EST
    ("new_york_summer_open", NEW_YORK, utc(2026, 7, 1, 13, 0), True),  # 09:00 EDT
    ("new_york_summer_closing_time", NEW_YORK, utc(2026, 7, 1, 21, 0), False),  # 17:00 EDT
    ("new_york_weekend_closed", NEW_YORK, utc(2026, 3, 7, 16, 0), False),  # Sat 11:00
    ("night_span_open_before_midnight", NIGHT, utc(2026, 3, 7, 4, 0), True),  # Fri 23:00
    ("night_span_after_midnight_belongs_to_friday", NIGHT, utc(2026, 3, 7, 8, 0),
     True),  # Sat 03:00
    ("night_span_end_is_closed", NIGHT, utc(2026, 3, 7, 11, 0), False),  # Sat 06:00
    ("night_span_before_start", NIGHT, utc(2026, 3, 7, 2, 59), False),  # Fri 21:59
    ("night_span_not_on_thursday", NIGHT, utc(2026, 3, 6, 4, 0), False),  # Thu 23:00
    ("night_span_not_after_saturday", NIGHT, utc(2026, 3, 8, 8, 0), False),  # Sun 04:00 EDT
    ("night_span_holiday_friday_evening", NIGHT, utc(2026, 3, 14, 3, 0), False),  # Fri 23:00
    ("night_span_holiday_friday_after_midnight", NIGHT, utc(2026, 3, 14, 7, 0),
     False),  # Sat 03:00 EDT
]


@pytest.mark.parametrize(("hours", "wall", "open_now"), [pytest.param(*c[1:], id=c[0])
                                                         for c in HOURS_CASES])
def test_branch_business_hours(hours: dict[str, Any], wall: dt.datetime,
                               open_now: bool) -> None:
    flow = make_flow({"b": {"type": "branch", "hours": hours, "open": "open_line",
                            "closed": "closed_line"}})
    call = FakeCall(flow, wall=wall).play("start")
    target = "open_line" if open_now else "closed_line"
    assert call.visible == [f"hangup {target}"]
    assert call.notes("branch") == [{"node": "b", "hours": "open" if open_now else "closed",
                                     "target": target}]


def test_branch_cases_come_before_business_hours_and_default_after() -> None:
    flow = make_flow({"b": {"type": "branch", "hours": SHANGHAI, "open": "open_line",
                            "cases": [{"var": "caller", "equals": "999", "goto": "vip"}],
                            "default": "fallback"}})
    open_wall, closed_wall = utc(2026, 3, 4, 2, 0), utc(2026, 3, 8, 3, 0)
    assert FakeCall(flow, {"caller": "999"}, closed_wall).play("start").visible == [
        "hangup vip"]
    assert FakeCall(flow, {"caller": "1"}, open_wall).play("start").visible == [
        "hangup open_line"]
    # closed, with no 'closed' target: the default
    assert FakeCall(flow, {"caller": "1"}, closed_wall).play("start").visible == [
        "hangup fallback"]


def test_branch_reads_the_wall_clock_when_the_call_reaches_it() -> None:
    flow = make_flow({
        "intro": {"type": "play", "prompts": ["welcome"], "next": "b"},
        "b": {"type": "branch", "hours": NEW_YORK, "open": "open_line", "closed": "closed_line"},
    })
    call = FakeCall(flow, wall=utc(2026, 3, 4, 13, 59)).play("start")  # 08:59 EST
    call.wall = utc(2026, 3, 4, 14, 0)  # the welcome took a minute
    call.play("done")
    assert call.visible == ["play welcome", "hangup open_line"]


# --- lookup ------------------------------------------------------------------------------------

LOOKUP = make_flow({
    "who": {"type": "set", "vars": {"acct": "A-17"}, "next": "lk"},
    "lk": {"type": "lookup", "url": "https://crm.example/customers/{acct}?from={called}",
           "method": "POST", "body": {"phone": "{caller}", "account": "{acct}", "x": "{nope}"},
           "timeout_ms": 2500, "next": "done", "on_failure": "failed",
           "result": {"name": "customer.name", "city": "customer.address.city",
                      "tag": "customer.tags.1", "balance": "balance", "vip": "vip",
                      "first": "orders.0.id", "gone": "customer.nope", "past": "orders.5.id",
                      "deep": "customer.name.first", "null": "nothing",
                      "address": "customer.address", "tags": "customer.tags"}},
})
ANSWER = {"customer": {"name": "Ann Lee", "address": {"city": "Shanghai"},
                       "tags": ["new", "gold"]},
          "balance": 12.5, "vip": True, "orders": [{"id": 7}], "nothing": None}


def test_lookup_emits_the_rendered_request_and_waits() -> None:
    call = FakeCall(LOOKUP, {"caller": CALLER, "called": "4000"}).play("start")
    assert call.actions[-1] == Lookup("https://crm.example/customers/A-17?from=4000", "POST",
                                      {"phone": CALLER, "account": "A-17", "x": ""}, 2.5)
    assert call.run.state is RunState.BUSY
    assert call.run.deadline is None  # the driver enforces timeout_s


def test_lookup_ok_maps_dotted_paths_into_variables_and_goes_next() -> None:
    call = FakeCall(LOOKUP, {"caller": CALLER}).play("start")
    call.looked_up(True, ANSWER)
    assert call.visible[-1] == "hangup done"
    found = {"name": "Ann Lee", "city": "Shanghai", "tag": "gold", "balance": "12.5",
             "vip": "true", "first": "7", "gone": "", "past": "", "deep": "", "null": "",
             "address": '{"city": "Shanghai"}', "tags": '["new", "gold"]'}
    assert {k: call.run.vars[k] for k in found} == found
    assert call.notes("lookup.done") == [{"node": "lk", "vars": found}]


@pytest.mark.parametrize("data", [None, [], "text", 42, {"customer": None}])
def test_lookup_ok_with_an_answer_of_another_shape_leaves_the_variables_empty(
    data: Any,
) -> None:
    call = FakeCall(LOOKUP).play("start")
    call.looked_up(True, data)
    assert call.visible[-1] == "hangup done"
    assert call.run.vars["name"] == "" and call.run.vars["first"] == ""


def test_lookup_failure_goes_to_on_failure_with_a_note() -> None:
    call = FakeCall(LOOKUP).play("start")
    call.looked_up(False, None, "timed out after 2.5 s")
    assert call.visible[-1] == "hangup failed"
    assert call.notes("lookup.failed") == [{"node": "lk", "error": "timed out after 2.5 s"}]
    assert "name" not in call.run.vars


def test_lookup_results_are_ignored_unless_a_lookup_is_under_way() -> None:
    flow = make_flow({
        "intro": {"type": "play", "prompts": ["welcome"], "next": "lk"},
        "lk": {"type": "lookup", "url": "https://crm.example/x", "result": {"n": "n"},
               "next": "after", "on_failure": "failed"},
        "after": {"type": "play", "prompts": ["thanks"], "next": "done"},
    })
    run = FlowRun(flow)
    assert run.on_lookup_result(T0, True, {"n": 1}) == []  # before start
    call = FakeCall(flow).play("start")
    assert call.looked_up(True, {"n": 1}) == []  # still playing the welcome
    assert call.run.state is RunState.PROMPTING
    call.play("done")
    call.looked_up(True, {"n": "first"})
    assert call.looked_up(True, {"n": "second"}) == []  # a second answer
    assert call.looked_up(False, None, "late") == []
    assert call.run.vars["n"] == "first"
    call.play("done")
    assert call.looked_up(True, {"n": "late"}) == []  # after the end
    assert call.visible == ["play welcome", "lookup GET https://crm.example/x", "play thanks",
                            "hangup done"]


# --- queue -------------------------------------------------------------------------------------

QUEUE = make_flow({"q": {"type": "queue", "queue": "support", "skills": ["en", "billing"],
                         "priority": 5, "prompts": ["please_hold"],
                         "on_unavailable": "no_agents"}})


def test_queue_plays_its_prompts_then_asks_the_acd() -> None:
    call = FakeCall(QUEUE).play("start")
    assert call.visible == ["play please_hold"]
    call.play("5 done")  # keys do not cut the prompt
    assert call.visible == ["play please_hold", "queue support en,billing 5"]
    assert call.actions[-1] == QueueCall("support", ("en", "billing"), 5)
    assert call.run.state is RunState.BUSY


def test_queue_without_prompts_asks_at_once() -> None:
    flow = make_flow({"q": {"type": "queue", "queue": "sales", "on_unavailable": "x"}})
    call = FakeCall(flow).play("start")
    assert call.visible == ["queue sales  0"]
    assert call.actions[-1] == QueueCall("sales", (), 0)


def test_queue_unavailable_goes_to_on_unavailable() -> None:
    call = FakeCall(QUEUE).play("start done noagent")
    assert call.visible[-1] == "hangup no_agents"
    assert call.notes("queue.unavailable") == [{"node": "q", "queue": "support",
                                                "why": "no agent"}]


def test_queue_accepted_waits_with_the_acd_and_does_nothing_more() -> None:
    call = FakeCall(QUEUE).play("start done queued")
    assert call.notes("queue.accepted") == [{"node": "q", "queue": "support"}]
    assert call.run.state is RunState.QUEUED
    assert call.visible[-1] == "music hold_music"
    assert call.run.deadline is None
    before = len(call.visible)
    call.play("1 # +3600")
    assert call.run.on_playback_done(call.now) == []
    assert call.queued(False) == [] and call.queued(True) == []
    assert call.transferred(True, 202) == [] and call.looked_up(True, {}) == []
    assert len(call.visible) == before
    assert not call.run.ended
    call.play("bye")
    assert call.run.ended
    assert call.notes("flow.abandoned") == [{"node": "q", "state": "queued"}]
    assert call.hangups() == []


# --- transfer ----------------------------------------------------------------------------------

TRANSFER = make_flow({
    "pick": {"type": "set", "vars": {"agent": "2001"}, "next": "x"},
    "x": {"type": "transfer", "to": "sip:{agent}@pbx.example;user=phone",
          "prompts": ["transferring"], "timeout_ms": 4000, "on_failure": "failed"},
})


def test_transfer_plays_its_prompts_then_refers_to_the_rendered_uri() -> None:
    call = FakeCall(TRANSFER).play("start done")
    assert call.visible == ["play transferring", "transfer sip:2001@pbx.example;user=phone"]
    assert call.run.state is RunState.BUSY
    assert call.run.deadline == T0 + 4.0


def test_transfer_accepted_hangs_up_with_transferred() -> None:
    call = FakeCall(TRANSFER).play("start done refer_ok")
    assert call.visible[-1] == "hangup transferred"
    assert call.notes("transfer.done") == [{"node": "x", "status_code": 202}]
    assert call.run.ended
    assert call.run.deadline is None
    assert call.wait(100) == []


def test_transfer_refused_goes_to_on_failure() -> None:
    call = FakeCall(TRANSFER).play("start done refer_486")
    assert call.visible[-1] == "hangup failed"
    assert call.notes("transfer.failed") == [{"node": "x", "status_code": 486}]


def test_transfer_without_an_answer_before_timeout_ms_goes_to_on_failure() -> None:
    call = FakeCall(TRANSFER).play("start done +3.5")
    assert call.visible[-1] == "transfer sip:2001@pbx.example;user=phone"
    call.play("+0.5")
    assert call.visible[-1] == "hangup failed"
    assert call.notes("transfer.failed") == [{"node": "x", "why": "no answer to REFER"}]
    assert call.transferred(True, 202) == []  # too late: the flow went on
    assert len(call.hangups()) == 1


def test_transfer_uri_may_be_a_whole_variable_and_without_prompts_starts_at_once() -> None:
    flow = make_flow({"x": {"type": "transfer", "to": "{target}", "on_failure": "failed"}})
    call = FakeCall(flow, {"target": "sips:queue@cc.example"}).play("start")
    assert call.actions[-1] == Transfer("sips:queue@cc.example")


# --- survey ------------------------------------------------------------------------------------

SURVEY = make_flow({"sv": {"type": "survey", "question": "nps", "timeout_ms": 4000,
                           "next": "done"}})
QUESTION, THANKS = "play survey_question", "play survey_thanks"

# (id, script, visible, score or None)
SURVEY_CASES: list[tuple[str, str, list[str], int | None]] = [
    ("score_after_the_question", "start done 4 done", [QUESTION, THANKS, "hangup done"], 4),
    ("score_during_the_question_stops_it", "start 5 done",
     [QUESTION, "stop", THANKS, "hangup done"], 5),
    ("lowest_score", "start done 1 done", [QUESTION, THANKS, "hangup done"], 1),
    ("invalid_key_asks_again", "start done 9 done 3 done",
     [QUESTION, QUESTION, THANKS, "hangup done"], 3),
    ("zero_is_invalid", "start done 0", [QUESTION, QUESTION], None),
    ("star_is_invalid", "start done *", [QUESTION, QUESTION], None),
    ("timeout_asks_again", "start done fire done 2 done",
     [QUESTION, QUESTION, THANKS, "hangup done"], 2),
    ("no_timeout_before_timeout_ms", "start done +3.9", [QUESTION], None),
    ("keys_during_the_thanks_are_ignored", "start done 4 5 # done",
     [QUESTION, THANKS, "hangup done"], 4),
]


@pytest.mark.parametrize(("script", "expected", "score"),
                         [pytest.param(*c[1:], id=c[0]) for c in SURVEY_CASES])
def test_survey(script: str, expected: list[str], score: int | None) -> None:
    call = FakeCall(SURVEY).play(script)
    assert call.visible == expected
    scores = [] if score is None else [{"node": "sv", "question": "nps", "score": score}]
    assert call.notes("survey") == scores
    assert call.notes("survey.no_answer") == []


@pytest.mark.parametrize(("script", "why"), [
    ("start done 9 done 0", "invalid"),
    ("start done fire done fire", "no_input"),
    ("start done fire done 7", "invalid"),
    ("start 8 6", "invalid"),
])
def test_survey_retries_exhausted_note_no_answer_and_go_next(script: str, why: str) -> None:
    call = FakeCall(SURVEY).play(script)
    assert call.visible[-1] == "hangup done"
    assert call.visible.count(QUESTION) == 2  # max_retries 1: asked once more
    assert call.notes("survey") == []
    assert call.notes("survey.no_answer") == [{"node": "sv", "question": "nps", "why": why}]


def test_survey_options_retries_and_no_thanks() -> None:
    flow = make_flow({"sv": {"type": "survey", "prompts": ["rate_us"], "thanks_prompts": [],
                             "max_retries": 0, "next": "done"}})
    assert FakeCall(flow).play("start done fire").visible == ["play rate_us", "hangup done"]
    assert FakeCall(flow).play("start done 3").visible == ["play rate_us", "hangup done"]
    three = make_flow({"sv": {"type": "survey", "max_retries": 3, "next": "done"}})
    call = FakeCall(three).play("start done fire done 0 done fire done 9")
    assert call.visible == [QUESTION] * 4 + ["hangup done"]


# --- language ----------------------------------------------------------------------------------


def test_language_switches_the_run_language_and_variable() -> None:
    flow = make_flow({
        "hi": {"type": "play", "prompts": ["welcome"], "next": "zh"},
        "zh": {"type": "language", "language": "zh-CN", "next": "menu"},
        "menu": {"type": "play", "prompts": ["main_menu", "en-US:beep"], "next": "n"},
        "n": {"type": "say", "kind": "number", "value": "12", "next": "en"},
        "en": {"type": "language", "language": "en-US", "next": "n2"},
        "n2": {"type": "say", "kind": "number", "value": "12", "next": "done"},
    })
    call = FakeCall(flow)
    assert call.run.language == "en-US" and call.run.vars["language"] == "en-US"
    call.play("start")
    assert call.run.language == "en-US"
    call.play("done")
    assert call.run.language == "zh-CN"
    assert call.run.vars["language"] == "zh-CN"
    # prompt names are unchanged: the session looks them up in the run's language
    assert call.actions[-1] == Play(("main_menu", "en-US:beep"))
    call.play("done")
    assert call.actions[-1] == Play(tuple(say("number", 12, "zh-CN")))
    call.play("done done")
    assert call.run.language == "en-US"
    assert call.visible == ["play welcome", "play main_menu,en-US:beep",
                            "play num_10,digit_2", "play num_12", "hangup done"]
    assert call.notes("language") == [{"node": "zh", "language": "zh-CN"},
                                      {"node": "en", "language": "en-US"}]


def test_language_of_the_flow_is_the_start_language() -> None:
    flow = make_flow({"n": {"type": "say", "kind": "number", "value": "2", "next": "done"}},
                     language="zh-CN")
    call = FakeCall(flow).play("start")
    assert call.run.language == "zh-CN"
    assert call.visible == ["play " + ",".join(say("number", 2, "zh-CN"))]


# --- record ------------------------------------------------------------------------------------


def record_flow(**options: Any) -> Flow:
    node = {"type": "record", "prompts": ["leave_message"], "max_s": 60, "silence_end_s": 3.0,
            "var": "msg", "next": "done", "on_failure": "failed", **options}
    return make_flow({"rec": node})


RECORD = record_flow()
REVIEW = record_flow(review=True)
LEAVE = "play leave_message,beep"
REC = "record 60 3.0"
REVIEWING = "play record_review"

# (id, flow, script, visible, msg afterwards or None, final state)
RECORD_CASES: list[tuple[str, Flow, str, list[str], str | None, RunState]] = [
    ("prompts_and_beep_then_recording", RECORD, "start done", [LEAVE, REC], None,
     RunState.RECORDING),
    ("keys_do_not_cut_the_prompts", RECORD, "start 1 # done", [LEAVE, REC], None,
     RunState.RECORDING),
    ("terminator_stops_the_recording", RECORD, "start done #", [LEAVE, REC, "stop_recording"],
     None, RunState.BUSY),
    ("other_keys_do_not_stop_it", RECORD, "start done 1 * 9", [LEAVE, REC], None,
     RunState.RECORDING),
    ("silence_stops_the_recording", RECORD, "start done silence",
     [LEAVE, REC, "stop_recording"], None, RunState.BUSY),
    ("max_s_stops_the_recording", RECORD, "start done +59.5 +0.5",
     [LEAVE, REC, "stop_recording"], None, RunState.BUSY),
    ("voice_recorded_sets_the_variable_and_goes_next", RECORD, "start done # voice",
     [LEAVE, REC, "stop_recording", "hangup done"], "/rec/1.wav", RunState.ENDED),
    ("nothing_heard_goes_to_on_failure", RECORD, "start done silence mute",
     [LEAVE, REC, "stop_recording", "hangup failed"], None, RunState.ENDED),
    ("recording_ended_by_the_media_side", RECORD, "start done mute",
     [LEAVE, REC, "hangup failed"], None, RunState.ENDED),
    ("silence_once_stopped_changes_nothing", RECORD, "start done # silence # +100",
     [LEAVE, REC, "stop_recording"], None, RunState.BUSY),
    ("no_beep", record_flow(beep=False), "start done", ["play leave_message", REC], None,
     RunState.RECORDING),
    ("no_prompts_no_beep_records_at_once", record_flow(beep=False, prompts=[]), "start", [REC],
     None, RunState.RECORDING),
    ("beep_alone", record_flow(prompts=[]), "start done", ["play beep", REC], None,
     RunState.RECORDING),
    ("own_max_and_silence", record_flow(max_s=5, silence_end_s=0), "start done +5",
     [LEAVE, "record 5 0.0", "stop_recording"], None, RunState.BUSY),
    ("star_terminator", record_flow(terminator="*"), "start done # *",
     [LEAVE, REC, "stop_recording"], None, RunState.BUSY),
    ("no_terminator", record_flow(terminator=None), "start done # * 1", [LEAVE, REC], None,
     RunState.RECORDING),
    ("review_plays_the_review_prompts", REVIEW, "start done # voice",
     [LEAVE, REC, "stop_recording", REVIEWING], "/rec/1.wav", RunState.PROMPTING),
    ("review_1_keeps", REVIEW, "start done # voice done 1",
     [LEAVE, REC, "stop_recording", REVIEWING, "hangup done"], "/rec/1.wav", RunState.ENDED),
    ("review_1_during_the_review_prompt", REVIEW, "start done # voice 1",
     [LEAVE, REC, "stop_recording", REVIEWING, "stop", "hangup done"], "/rec/1.wav",
     RunState.ENDED),
    ("review_2_records_again", REVIEW, "start done # voice done 2 done",
     [LEAVE, REC, "stop_recording", REVIEWING, LEAVE, REC], "/rec/1.wav",
     RunState.RECORDING),
    ("review_2_then_keep_the_second", REVIEW, "start done # voice done 2 done # voice done 1",
     [LEAVE, REC, "stop_recording", REVIEWING, LEAVE, REC, "stop_recording", REVIEWING,
      "hangup done"], "/rec/2.wav", RunState.ENDED),
    ("review_2_during_the_review_prompt", REVIEW, "start done # voice 2",
     [LEAVE, REC, "stop_recording", REVIEWING, "stop", LEAVE], "/rec/1.wav",
     RunState.PROMPTING),
    ("review_no_answer_keeps", REVIEW, "start done # voice done +4.5 +0.5",
     [LEAVE, REC, "stop_recording", REVIEWING, "hangup done"], "/rec/1.wav", RunState.ENDED),
    ("review_other_keys_are_ignored", REVIEW, "start done # voice done 7 1",
     [LEAVE, REC, "stop_recording", REVIEWING, "hangup done"], "/rec/1.wav", RunState.ENDED),
    ("review_other_key_during_the_review_prompt_does_not_cut_it", REVIEW,
     "start done # voice 7 done 1",
     [LEAVE, REC, "stop_recording", REVIEWING, "hangup done"], "/rec/1.wav", RunState.ENDED),
    ("review_is_not_offered_for_silence", REVIEW, "start done silence mute",
     [LEAVE, REC, "stop_recording", "hangup failed"], None, RunState.ENDED),
    ("caller_hangup_while_recording_abandons", RECORD, "start done bye # silence voice +100",
     [LEAVE, REC], None, RunState.ENDED),
]


@pytest.mark.parametrize(("flow", "script", "expected", "msg", "state"),
                         [pytest.param(*c[1:], id=c[0]) for c in RECORD_CASES])
def test_record(flow: Flow, script: str, expected: list[str], msg: str | None,
                state: RunState) -> None:
    call = FakeCall(flow).play(script)
    assert call.visible == expected
    assert call.run.vars.get("msg") == msg
    assert call.run.state is state
    assert len(call.hangups()) <= 1


def test_record_start_and_notes() -> None:
    call = FakeCall(RECORD).play("start done")
    assert call.actions[-1] == StartRecording(60, 3.0)
    assert call.run.deadline == T0 + 60
    call.play("# voice")
    assert call.notes("record.done") == [{"node": "rec", "path": "/rec/1.wav",
                                          "duration_s": 4.25, "heard_voice": True}]


def test_record_caller_hangup_while_recording_notes_flow_abandoned() -> None:
    call = FakeCall(RECORD).play("start done bye")
    assert call.run.ended
    assert call.notes("flow.abandoned") == [{"node": "rec", "state": "recording"}]
    assert call.hangups() == []
    assert call.run.on_recording_done(call.now, "/rec/x.wav", 1.0, True) == []
    assert "msg" not in call.run.vars


def test_record_again_is_noted() -> None:
    call = FakeCall(REVIEW).play("start done # voice done 2")
    assert call.notes("record.again") == [{"node": "rec"}]


# --- stray results -----------------------------------------------------------------------------

STRAY_FLOW = make_flow({
    "intro": {"type": "play", "prompts": ["welcome"], "next": "main"},
    "main": {"type": "menu", "prompts": ["main_menu"], "on_failure": "failed",
             "choices": {"1": "lk", "2": "q", "3": "x", "4": "rec", "5": "ask"}},
    "lk": {"type": "lookup", "url": "https://crm.example/x", "next": "done",
           "on_failure": "failed"},
    "q": {"type": "queue", "queue": "sales", "on_unavailable": "failed"},
    "x": {"type": "transfer", "to": "sip:1@pbx.example", "on_failure": "failed"},
    "rec": {"type": "record", "beep": False, "next": "done", "on_failure": "failed"},
    "ask": {"type": "collect", "prompts": ["enter_account"], "var": "acct", "next": "done",
            "on_failure": "failed"},
})

RESULTS = {
    "lookup": lambda c: c.looked_up(True, {"a": 1}),
    "queue": lambda c: c.queued(True),
    "transfer": lambda c: c.transferred(True, 202),
    "recording": lambda c: c.recorded(True),
    "silence": lambda c: c.silence(),
}


@pytest.mark.parametrize(("script", "expects"), [
    ("start", set()),  # prompting
    ("start done", set()),  # waiting in a menu
    ("start done done 5 done", set()),  # collecting
    ("start done done 1", {"lookup"}),
    ("start done done 2", {"queue"}),
    ("start done done 3", {"transfer"}),
    ("start done done 4", {"recording", "silence"}),
    ("start done done 4 #", {"recording"}),
    ("start done done 2 queued", set()),
    ("start done done 8 done 8 done 8 done 8", set()),  # ended by the flow
    ("start done bye", set()),  # ended by the caller
], ids=["prompting", "menu", "collecting", "lookup", "queue", "transfer", "recording",
        "recording_stopped", "queue_accepted", "ended", "abandoned"])
def test_results_nobody_waits_for_are_ignored(script: str, expects: set[str]) -> None:
    for kind, feed in RESULTS.items():
        if kind in expects:
            continue
        call = FakeCall(STRAY_FLOW).play(script)
        before = (call.run.state, call.run.node_name, call.run.deadline, dict(call.run.vars))
        assert feed(call) == [], kind
        assert (call.run.state, call.run.node_name, call.run.deadline,
                dict(call.run.vars)) == before


# --- property: a flow with every node type, any sequence of events -----------------------------

EVERY_NODE = make_flow({
    "greet": {"type": "set", "vars": {"greeting": "hi {caller}", "t": "09:05"},
              "next": "route"},
    "route": {"type": "branch", "cases": [{"var": "caller", "prefix": "+86", "goto": "zh"}],
              "hours": SHANGHAI, "open": "intro", "closed": "closed_msg"},
    "zh": {"type": "language", "language": "zh-CN", "next": "intro"},
    "closed_msg": {"type": "play", "prompts": ["closed"], "barge_in": True, "next": "main"},
    "intro": {"type": "play", "prompts": ["welcome"], "barge_in": True, "next": "main"},
    "main": {"type": "menu", "prompts": ["main_menu"], "timeout_ms": 3000, "max_retries": 1,
             "on_failure": "bye", "choices": {
                 "1": "acct", "2": "sales", "3": "xfer", "4": "vm", "5": "survey",
                 "6": "when", "7": "greet", "8": "bye", "9": "check", "*": "zh"}},
    "acct": {"type": "collect", "prompts": ["enter_account"], "var": "acct", "min_digits": 2,
             "max_digits": 6, "validate": {"regex": "[0-9]+"}, "confirm": {},
             "max_retries": 1, "barge_in": False, "next": "say_acct", "on_failure": "main"},
    "say_acct": {"type": "say", "kind": "digits", "value": "{acct}",
                 "prompts": ["you_entered"], "next": "lk"},
    "lk": {"type": "lookup", "url": "https://crm.example/a/{acct}", "next": "say_bal",
           "on_failure": "main", "result": {"name": "customer.name",
                                            "bal": "customer.balance"}},
    "say_bal": {"type": "say", "kind": "money", "value": "{bal}", "next": "main"},
    "sales": {"type": "queue", "queue": "sales", "skills": ["en"], "priority": 3,
              "prompts": ["hold"], "on_unavailable": "vm"},
    "xfer": {"type": "transfer", "to": "sip:{acct}@pbx.example", "prompts": ["transferring"],
             "timeout_ms": 2000, "on_failure": "main"},
    "vm": {"type": "record", "prompts": ["leave_message"], "max_s": 5, "silence_end_s": 1.0,
           "review": True, "next": "thanks", "on_failure": "main"},
    "survey": {"type": "survey", "next": "bye"},
    "when": {"type": "say", "kind": "time", "value": "{t}", "next": "main"},
    "check": {"type": "branch", "cases": [{"var": "name", "empty": False, "goto": "hello"}]},
    "hello": {"type": "goto", "next": "main"},
    "thanks": {"type": "hangup", "prompts": ["thanks"], "reason": "recorded"},
    "bye": {"type": "hangup", "prompts": ["goodbye"], "pause_ms": 500, "reason": "normal"},
})
_RESULT_NODES = {LookupNode: "lookup", QueueNode: "queue", TransferNode: "transfer",
                 RecordNode: "recording"}


def expects(run: FlowRun) -> set[str]:
    """The results the run is waiting for."""
    node = run.flow.nodes[run.node_name]
    kind = next((k for t, k in _RESULT_NODES.items() if isinstance(node, t)), None)
    if kind is None or run.state not in (RunState.BUSY, RunState.RECORDING):
        return set()
    return {kind}


LOOKUP_DATA = st.sampled_from([
    None, [], {"customer": {"name": "Ann", "balance": "12.05"}},
    {"customer": {"name": ["x"], "balance": "abc"}}, {"customer": {"balance": 3}},
    {"customer": {"name": None, "balance": {"a": 1}}},
])
KEY = st.tuples(st.just("key"), st.sampled_from(list(DTMF_KEYS)))
MENU_KEY = st.tuples(st.just("key"), st.sampled_from(list("0123456789#")))
DONE = st.tuples(st.just("done"), st.none())
EVENT = st.one_of(  # keys and ends of prompts more often: they lead deeper into the flow
    KEY, MENU_KEY, MENU_KEY, MENU_KEY, DONE, DONE, DONE,
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=8.0)),
    st.tuples(st.just("fire"), st.floats(min_value=0.0, max_value=3.0)),
    st.tuples(st.just("silence"), st.none()),
    st.tuples(st.just("recording"), st.booleans()),
    st.tuples(st.just("lookup"), st.tuples(st.booleans(), LOOKUP_DATA)),
    st.tuples(st.just("queue"), st.booleans()),
    st.tuples(st.just("transfer"), st.sampled_from([(True, 202), (False, 486), (False, 0)])),
)
# Ways into the deeper nodes, from the first prompt (a play with barge-in before the menu);
# random events follow. "d" is the end of the prompt playing.
GUIDES = ["", "1 d 4 2 # d 1 d", "1 d 4 2 # d 1 d d", "2 d", "3 d", "4 d", "4 d # ", "5 d",
          "1 4 2 # d 1 d 1"]
WALLS = st.sampled_from([utc(2026, 3, 4, 2, 0), utc(2026, 3, 8, 3, 0), utc(2026, 10, 1, 3, 0)])


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(guide=st.sampled_from(GUIDES), events=st.lists(EVENT, max_size=80),
       bye_at=st.none() | st.integers(min_value=0, max_value=80),
       caller=st.sampled_from([CALLER, "+12125550100", "100", ""]),
       wall=WALLS)
def test_any_event_sequence_on_every_node_type(
    guide: str, events: list[tuple[str, Any]], bye_at: int | None, caller: str,
    wall: dt.datetime,
) -> None:
    call = FakeCall(EVERY_NODE, {"caller": caller}, wall)
    pending: set[str] = set()  # operations the driver was asked for and has not answered

    def step(kind: str, arg: Any) -> None:
        run = call.run
        was_ended = run.ended
        waiting_for = expects(run)
        assert waiting_for <= pending, "waiting for a result of something never asked"
        before = (run.state, run.node_name)
        if kind == "key":
            out = call.key(arg)
        elif kind == "done":
            if call.playing:
                out = call.done()
            else:  # the end of a playback that was stopped or already reported: stale
                out = run.on_playback_done(call.now)
                assert out == [], "a stale end of playback was taken"
        elif kind == "wait":
            out = call.wait(arg)
        elif kind == "fire":
            if run.deadline is None:
                out = call.wait(arg)
            else:
                call.now = max(call.now, run.deadline) + arg  # at or after the deadline
                out = call._record(run.on_timer(call.now))
        elif kind == "silence":
            out = call.silence()
        elif kind == "bye":
            out = call.bye()
        else:
            if kind == "recording":
                out = call.recorded(arg)
            elif kind == "lookup":
                out = call.looked_up(arg[0], arg[1], "" if arg[0] else "HTTP 500")
            elif kind == "queue":
                out = call.queued(arg)
            else:
                out = call.transferred(*arg)
            if kind in waiting_for:
                pending.discard(kind)
                assert out, f"the {kind} result the run waited for was ignored"
            else:
                assert out == [], f"a stray {kind} result was taken"
                assert (run.state, run.node_name) == before
        if kind == "silence" and before[0] is not RunState.RECORDING:
            assert out == [], "silence outside a recording was taken"
        for action in out:
            name = {Lookup: "lookup", QueueCall: "queue", Transfer: "transfer",
                    StartRecording: "recording"}.get(type(action))
            if name is not None:
                pending.add(name)
        if was_ended:
            assert out == [], "actions after the run ended"
        hangups = [a for a in out if isinstance(a, Hangup)]
        if hangups:
            assert run.ended and out[-1] == hangups[0], "actions after a Hangup"
        if not run.ended:
            assert (run.state is RunState.PROMPTING) == call.playing, (
                f"state {run.state} while a prompt {'plays' if call.playing else 'is over'}")
            assert run.state is not RunState.NEW
        assert run.language in ("en-US", "zh-CN")
        assert all(isinstance(v, str) for v in run.vars.values())

    call.start()
    events = [("done", None) if t == "d" else ("key", t) for t in guide.split()] + events
    for i, (kind, arg) in enumerate(events):
        if i == bye_at:
            step("bye", None)
        step(kind, arg)
    if bye_at is not None and bye_at >= len(events):
        step("bye", None)
    # Let the call run out: prompts end, timers fire, results come back negative.
    for _ in range(200):
        run = call.run
        if run.ended:
            break
        waiting_for = expects(run)
        if call.playing:
            step("done", None)
        elif run.state is RunState.RECORDING:
            step("silence", None)
        elif waiting_for == {"recording"}:
            step("recording", False)
        elif waiting_for == {"lookup"}:
            step("lookup", (False, None))
        elif waiting_for == {"queue"}:
            step("queue", False)
        elif waiting_for == {"transfer"}:
            step("transfer", (False, 486))
        elif run.deadline is not None:
            step("fire", 0.0)
        else:
            node = run.flow.nodes[run.node_name]
            assert isinstance(node, QueueNode), f"stuck in {run.state} at {run.node_name}"
            step("bye", None)  # with an agent: only the caller ends it
    assert call.run.ended
    hangups, abandoned = len(call.hangups()), len(call.notes("flow.abandoned"))
    assert (hangups, abandoned) in {(1, 0), (0, 1)}
