"""The ACD file: the shipped one is valid; mistakes are named with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.acd import AcdConfigError, load_acd, parse_acd
from ivr.cli import main

SHIPPED = Path(__file__).parent.parent / "ivr" / "acd.yaml"


def test_the_shipped_file_has_sales_support_billing_and_a_reason_tree() -> None:
    cfg = load_acd(SHIPPED)
    assert list(cfg.queues) == ["sales", "support", "billing"]
    assert cfg.queues["support"].skills.min_at(0) == 7
    assert cfg.queues["support"].skills.min_at(45) == 4
    assert cfg.reason_codes()["billing/refund"] == "Refund request"
    assert ("billing/refund", "Refund request") in cfg.search_reasons("refund")
    assert cfg.agents["1002"].queues == {"support": 9, "billing": 6}


def _error(text: str) -> str:
    with pytest.raises(AcdConfigError) as info:
        parse_acd(text, "acd.yaml")
    return str(info.value)


def test_an_unknown_strategy_is_named_at_its_line_with_a_suggestion() -> None:
    msg = _error("queues:\n  sales:\n    strategy: longest_idle\n")
    assert msg.startswith("acd.yaml:3: queues.sales.strategy: unknown strategy "
                          "'longest_idle' (did you mean 'longest-idle'?)")


def test_a_misspelt_field_is_named_with_a_suggestion() -> None:
    msg = _error("queues:\n  sales:\n    ring_timout_s: 10\n")
    assert msg == ("acd.yaml:3: queues.sales.ring_timout_s: unknown field "
                   "(did you mean 'ring_timeout_s'?)")


def test_an_agent_in_a_queue_that_does_not_exist() -> None:
    msg = _error("queues: {sales: {}}\nagents:\n  1001: {name: A, queues: {sale: 5}}\n")
    assert "agents.1001.queues: no queue 'sale' (queues: sales)" in msg


def test_a_proficiency_out_of_range_and_a_password_are_refused() -> None:
    msg = _error("queues: {sales: {}}\nagents:\n  1001: {name: A, queues: {sales: 11}}\n")
    assert "acd.yaml:3: agents.1001.queues: sales: proficiency 11 is not between 1 and 10" \
        in msg
    msg = _error("queues: {sales: {}}\nagents:\n  1001: {name: A, password: x, "
                 "queues: {sales: 1}}\n")
    assert "passwords are not kept in the ACD file" in msg


def test_widening_rules_must_widen() -> None:
    msg = _error("queues:\n  s:\n    skills:\n      min_proficiency: 3\n"
                 "      widen: [{after_s: 30, min_proficiency: 5}]\n")
    assert "acd.yaml:3: queues.s.skills: " in msg and "narrows" in msg


def test_not_yaml_names_the_line() -> None:
    assert _error("queues:\n  sales: [\n").startswith("acd.yaml")


def test_ivr_acd_check_says_ok_or_lists_the_problems(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acd", "check", str(SHIPPED)]) == 0
    assert "ok (3 queues: sales, support, billing; 3 agents;" in capsys.readouterr().out
    bad = tmp_path / "acd.yaml"
    bad.write_text("queues:\n  sales:\n    max_size: 0\n")
    assert main(["acd", "check", str(bad)]) == 1
    assert f"{bad}:3: queues.sales.max_size:" in capsys.readouterr().err


def test_a_misspelt_top_level_key_is_named_with_a_suggestion() -> None:
    msg = _error("queues: {sales: {}}\ncall_reason: {}\n")
    assert msg == "acd.yaml:2: call_reason: unknown field (did you mean 'call_reasons'?)"


def test_a_queues_script_is_found_for_the_callers_language_or_the_nearest() -> None:
    config = parse_acd("""
queues:
  sales:
    script:
      en: ["Thank you for calling, job number {job}", "Please wait a moment"]
      de-DE: ["Danke für Ihren Anruf"]
  plain: {}
banned_phrases: ["it's company policy"]
""", "acd.yaml")
    assert config.script("sales", "en-US") == ("en", ["Thank you for calling, job number {job}",
                                                      "Please wait a moment"])
    assert config.script("sales", "de") == ("de-DE", ["Danke für Ihren Anruf"])
    assert config.script("sales", "fr")[0] == "en"  # the first written
    assert config.script("plain", "en") == ("", [])
    assert config.banned_phrases == ["it's company policy"]
    assert parse_acd("queues: {q: {}}", "a.yaml").banned_phrases == [
        "it's company policy", "you're wrong"]
