"""The sipp scenarios shipped in scripts/sipp/ for users: rendered from tests/sipp.py (so their
header says what they do) and each doing what it says against the default flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import WorkerProcess, ended_call
from tests.sipp_scenarios import SHIPPED_DIR, render_all


def test_shipped_scenarios_are_what_tests_sipp_renders() -> None:
    rendered = render_all()
    assert sorted(p.name for p in SHIPPED_DIR.glob("*.xml")) == sorted(rendered)
    for name, text in rendered.items():
        assert (SHIPPED_DIR / name).read_text() == text, (
            f"scripts/sipp/{name} is stale: run python -m tests.sipp_scenarios")
        header = text.split("<scenario", 1)[0]
        assert "<send" not in header and "[call_id]" not in header  # no body in the comment






@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
def test_english_support_scenario_reaches_the_read_back_and_confirms(
        default_worker: WorkerProcess, tmp_path: Path) -> None:
    scenario = (SHIPPED_DIR / "english-support.xml").read_text()
    result = sipp.run(scenario, default_worker.target, tmp_path, timeout_s=60)
    assert result.ok, result.output + result.errors
    row, events = ended_call(default_worker.db, timeout_s=20)
    assert row["menu_path"] == "choose_language:1 main_menu:2"
    assert (row["end_reason"], row["hangup_by"]) == ("caller_hangup", "caller")
    kinds = [k for k, _ in events]
    assert [d for k, d in events if k == "collect.done"] == [
        {"node": "support", "var": "account", "digits": "4152"}]
    assert kinds.index("collect.done") < kinds.index("queue.requested")


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
def test_english_voicemail_scenario_leaves_a_message(
        default_worker: WorkerProcess, tmp_path: Path) -> None:
    scenario = (SHIPPED_DIR / "english-voicemail.xml").read_text()
    result = sipp.run(scenario, default_worker.target, tmp_path, timeout_s=90)
    assert result.ok, result.output + result.errors
    row, events = ended_call(default_worker.db, timeout_s=20)
    assert row["menu_path"] == "main_menu:1"  # the language menu timed out: English
    assert (row["end_reason"], row["hangup_by"]) == ("normal", "ivr")
    recordings = [d for k, d in events if k == "recording"]
    assert len(recordings) == 1 and recordings[0]["heard_voice"] is True
    assert Path(recordings[0]["path"]).is_file()
