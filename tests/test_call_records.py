"""Call records that say what happened: sipp calls through a real worker, then the store."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import FLOWS, start_worker
from tests.test_calls_sipp import events, wait_ended

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]


@pytest.mark.parametrize("flow", ["pause_hangup.yaml", "pause_only_hangup.yaml"])
def test_a_hangup_after_a_pause_records_the_callers_answer_to_the_bye(
        flow: str, tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / flow)
    try:
        caller = sipp.Caller("pause_then_bye").ivr_hangs_up(20000)
        result = sipp.run(caller, wp.target, tmp_path)
        # sipp has answered the BYE with 200 (its last message) by the time it exits.
        bye_answered_by = time.time()
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert (row["end_reason"], row["hangup_by"]) == ("no_input", "ivr")
    assert row["sip_code"] == 200, dict(row)
    assert row["sip_reason"] != "no answer to BYE"
    # The end is the 200 to the BYE, not a confirmation timeout after it.
    assert row["ended_at"] <= bye_answered_by
    kinds = [k for k, _ in events(wp.db, row["call_id"])]
    assert kinds[-1] == "ended"
