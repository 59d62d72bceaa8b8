"""In-call media security against a real worker: RTP from anyone but the caller is ignored.

The caller's RTP endpoint is a socket of the test (its port in sipp's SDP); an "intruder" is
another socket that finds the call's RTP port and sends to it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import FLOWS, WorkerProcess, start_worker
from tests.rtp_peer import RtpPeer
from tests.test_calls_sipp import wait_ended

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]


def _call_in_background(caller: sipp.Caller, worker: WorkerProcess, tmp_path: Path,
                        results: list[sipp.SippResult]) -> threading.Thread:
    t = threading.Thread(target=lambda: results.append(sipp.run(caller, worker.target,
                                                                  tmp_path)))
    t.start()
    return t


@pytest.mark.parametrize("rtp_thread", ["true", "false"])
def test_rtp_from_a_second_source_does_not_take_the_call_over(rtp_thread: str,
                                                               tmp_path: Path) -> None:
    worker = start_worker(tmp_path, env={"IVR_MEDIA_RTP_THREAD": rtp_thread})
    try:
        _hijack_attempt(worker, tmp_path)
    finally:
        worker.stop()


def _hijack_attempt(worker: WorkerProcess, tmp_path: Path) -> None:
    caller = RtpPeer(ssrc=0x11111111)
    intruder = RtpPeer(ssrc=0x22222222)
    results: list[sipp.SippResult] = []
    scenario = sipp.Caller("hijack", media_port=caller.port).pause(4000).caller_hangs_up()
    call = _call_in_background(scenario, worker, tmp_path, results)
    try:
        ivr_rtp = caller.first_source()
        caller.stream_audio(ivr_rtp)  # the real caller talks, 50 packets a second
        time.sleep(0.5)
        attack_start = time.monotonic()
        # A burst (more than PJMEDIA's NAT-latching probation of 10 packets in a row), then
        # a steady stream like a phone's, with an SSRC of its own.
        intruder.send_audio(ivr_rtp, 40, interval_s=0)
        intruder.send_audio(ivr_rtp, 50)
        after = time.monotonic()
        call.join(timeout=30)
    finally:
        caller.close()
        intruder.close()
    assert results and results[0].ok, results[0].output + results[0].errors
    # The IVR kept sending to the caller (50 packets a second) through and after the attack:
    # at least half of them, whatever the machine's load.
    window_s = after - (attack_start + 0.2)
    assert caller.count_between(attack_start + 0.2, after) >= 0.5 * 50 * window_s
    assert intruder.received == [], f"{len(intruder.received)} RTP packets went to the intruder"
    assert wait_ended(worker.db)["end_reason"] == "caller_hangup"


def test_a_third_partys_rfc4733_digit_does_not_reach_the_flow(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "keypad.yaml")
    caller = RtpPeer(ssrc=0x33333333)
    intruder = RtpPeer(ssrc=0x44444444)
    results: list[sipp.SippResult] = []
    scenario = sipp.Caller("dtmf_injection", media_port=caller.port).ivr_hangs_up(15000)
    try:
        call = _call_in_background(scenario, wp, tmp_path, results)
        ivr_rtp = caller.first_source()
        intruder.send_digit(ivr_rtp, "7")  # the caller has sent nothing yet
        time.sleep(0.5)
        caller.send_digit(ivr_rtp, "3")
        call.join(timeout=30)
        assert results and results[0].ok, results[0].output + results[0].errors
        row = wait_ended(wp.db)
        con = sqlite3.connect(wp.db)
        digits = [d for (d,) in con.execute(
            "SELECT json_extract(data, '$.digit') FROM call_events WHERE kind = 'dtmf'")]
        con.close()
    finally:
        caller.close()
        intruder.close()
        wp.stop()
    assert digits == ["3"]
    assert row["menu_path"] == "menu:3"
    assert not any('"digit": "7"' in line for line in wp.lines)


def test_a_call_whose_rtp_stops_ends_as_rtp_timeout(tmp_path: Path) -> None:
    timeout_s = 2.0
    wp = start_worker(tmp_path, env={"IVR_MEDIA_RTP_TIMEOUT_S": str(timeout_s)})
    talker = RtpPeer(ssrc=0x55555555)
    try:
        # A caller who keeps sending RTP for twice the timeout is not cut off...
        results: list[sipp.SippResult] = []
        scenario = sipp.Caller("rtp_flows", media_port=talker.port).pause(
            int(2 * timeout_s * 1000)).caller_hangs_up()
        call = _call_in_background(scenario, wp, tmp_path, results)
        talker.stream_audio(talker.first_source())
        call.join(timeout=30)
        assert results and results[0].ok, results[0].output + results[0].errors
        assert wait_ended(wp.db)["end_reason"] == "caller_hangup"
        # ... one whose RTP stops is ended by the IVR once the timeout has passed.
        mute = RtpPeer(ssrc=0x66666666)
        scenario = sipp.Caller("rtp_stops", media_port=mute.port).ivr_hangs_up(30000)
        results.clear()
        call = _call_in_background(scenario, wp, tmp_path, results)
        mute.send_audio(mute.first_source(), 25)  # half a second of audio, then nothing
        last_sent = time.time()
        call.join(timeout=40)
        mute.close()
        assert results and results[0].ok, results[0].output + results[0].errors
        row = wait_ended(wp.db)
    finally:
        talker.close()
        wp.stop()
        (tmp_path / "worker.log").write_text("".join(wp.lines))
    assert (row["end_reason"], row["hangup_by"]) == ("rtp_timeout", "system")
    assert row["ended_at"] >= last_sent + timeout_s - 0.1  # never before the timeout
    assert any('"call.rtp_timeout"' in line for line in wp.lines)


def test_a_reinvite_that_moves_the_callers_media_moves_the_lock_with_it(
        tmp_path: Path) -> None:
    timeout_s = 1.0  # RTP the worker no longer takes would end the call as rtp_timeout
    wp = start_worker(tmp_path, env={"IVR_MEDIA_RTP_TIMEOUT_S": str(timeout_s)})
    first = RtpPeer(ssrc=0x77777777)
    moved = RtpPeer(ssrc=0x77777777)
    results: list[sipp.SippResult] = []
    scenario = (sipp.Caller("media_moves", media_port=first.port).pause(500)
                .reinvite(moved.port).pause(int(4 * timeout_s * 1000)).caller_hangs_up())
    try:
        call = _call_in_background(scenario, wp, tmp_path, results)
        ivr_rtp = first.first_source()
        first.stream_audio(ivr_rtp)
        assert moved.first_source() == ivr_rtp  # after the re-INVITE the IVR sends there
        moved_at = time.monotonic()
        moved.stream_audio(ivr_rtp)  # ... and must take the caller's RTP from there
        call.join(timeout=30)
        assert results and results[0].ok, results[0].output + results[0].errors
        row = wait_ended(wp.db)
    finally:
        first.close()
        moved.close()
        wp.stop()
    assert first.count_between(moved_at + 0.2, moved_at + 60) == 0
    assert row["end_reason"] == "caller_hangup"


def test_silence_while_the_caller_holds_the_call_is_not_an_rtp_timeout(tmp_path: Path) -> None:
    timeout_s = 1.0
    wp = start_worker(tmp_path, env={"IVR_MEDIA_RTP_TIMEOUT_S": str(timeout_s)})
    peer = RtpPeer(ssrc=0x88888888)
    results: list[sipp.SippResult] = []
    # On hold (a=inactive) the caller sends nothing, for three times the timeout.
    scenario = (sipp.Caller("held_silent", media_port=peer.port).reinvite(peer.port, "inactive")
                .pause(int(3 * timeout_s * 1000)).caller_hangs_up())
    try:
        call = _call_in_background(scenario, wp, tmp_path, results)
        call.join(timeout=30)
        assert results and results[0].ok, results[0].output + results[0].errors
        row = wait_ended(wp.db)
    finally:
        peer.close()
        wp.stop()
    assert row["end_reason"] == "caller_hangup"


def test_with_srtp_mandatory_a_plain_rtp_offer_is_refused_with_488(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, env={"IVR_MEDIA_SRTP": "mandatory"})
    refused = (Path(__file__).parent / "sipp" / "expect_busy.xml").read_text()
    try:
        result = sipp.run(refused.replace("486", "488"), wp.target, tmp_path, timeout_s=10)
    finally:
        wp.stop()
    assert result.ok, result.output + result.errors
