"""Call records that say what happened: sipp calls through a real worker, then the store."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import FLOWS, start_worker
from tests.rtp import dtmf_tones, write_rtp_pcap
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


# RFC 3261 (17.2.1, 13.3.1.4): the UAS retransmits its 2xx until the ACK comes or 64*T1 has
# passed, T1 = 500 ms (PJSIP's default, which the worker keeps).
T1_S = 0.5
TIMER_H_S = 64 * T1_S


def test_a_call_never_acked_ends_at_timer_h_recorded_as_no_ack(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "hold.yaml")
    try:
        # The caller sends audio all along (longer than timer H), so only the missing ACK
        # can end the call.
        pcap = tmp_path / "audio.pcap"
        write_rtp_pcap(pcap, dtmf_tones("", lead_ms=int((TIMER_H_S + 20) * 1000)))
        scenario = (Path(__file__).parent / "sipp" / "caller_never_acks.xml").read_text()
        result = sipp.run(scenario.replace("__PCAP__", str(pcap)), wp.target, tmp_path,
                          timeout_s=int(TIMER_H_S * 2))
        bye_answered_by = time.time()
        # The scenario passes only if the worker ended the dialog with a BYE.
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert (row["end_reason"], row["hangup_by"]) == ("no_ack", "system"), dict(row)
    assert row["sip_code"] == 408
    assert row["ended_at"] <= bye_answered_by
    # It is timer H that ended it, nothing before (a second to spare).
    assert row["ended_at"] - row["answered_at"] >= TIMER_H_S - 1
