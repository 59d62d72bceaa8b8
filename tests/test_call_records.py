"""Call records that say what happened: sipp calls through a real worker, then the store."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests import sipp
from tests.conftest import FLOWS, start_worker
from tests.rtp import dtmf_tones, write_call_pcap, write_rtp_pcap
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
    # The end is the 200 to the BYE, not a confirmation timeout after it (HANGUP_CONFIRM_S,
    # 5 s): sipp may exit a moment before the worker has read that 200, hence the second.
    assert row["ended_at"] <= bye_answered_by + 1.0
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
    assert row["ended_at"] <= bye_answered_by + 1.0  # sipp exits as its 200 leaves
    # It is timer H that ended it, nothing before (a second to spare).
    assert row["ended_at"] - row["answered_at"] >= TIMER_H_S - 1


def _recordings(var_dir: Path) -> list[Path]:
    return sorted((var_dir / "recordings").rglob("*.wav"))


def _events(db: Path, call_id: str) -> list[tuple[str, dict]]:
    return [(k, json.loads(d)) for k, d in events(db, call_id)]


def _message_pcap(path: Path, start_s: float, length_s: float) -> None:
    """The caller speaks (a 440 Hz tone well above the voice threshold) for ``length_s``."""
    t = np.arange(int(8000 * length_s)) / 8000
    write_call_pcap(path, [], audio=[(start_s, (6000 * np.sin(2 * np.pi * 440 * t))
                                      .astype(np.int16))])


def test_a_voicemail_of_silence_leaves_no_file_and_no_recording(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "voicemail.yaml")
    try:
        result = sipp.run(sipp.Caller("silent_voicemail").ivr_hangs_up(20000), wp.target,
                          tmp_path)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert row["end_reason"] == "no_message"
    evs = _events(wp.db, row["call_id"])
    assert "recording" not in [k for k, _ in evs]
    done = [d for k, d in evs if k == "record.done"]
    assert len(done) == 1 and done[0]["path"] == "" and done[0]["heard_voice"] is False
    assert _recordings(wp.var_dir) == []
    assert not any('"recording"' in line or ".wav" in line for line in wp.lines)


def test_a_voicemail_that_holds_a_message_is_kept(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "voicemail.yaml")
    try:
        pcap = tmp_path / "message.pcap"
        _message_pcap(pcap, start_s=0.8, length_s=1.0)
        caller = sipp.Caller("voicemail_message").play_pcap(pcap).ivr_hangs_up(20000)
        result = sipp.run(caller, wp.target, tmp_path)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert row["end_reason"] == "message_left"
    recordings = [d for k, d in _events(wp.db, row["call_id"]) if k == "recording"]
    assert len(recordings) == 1 and recordings[0]["heard_voice"] is True
    assert _recordings(wp.var_dir) == [Path(recordings[0]["path"])]


@pytest.mark.parametrize("speaks", [True, False])
def test_a_caller_who_hangs_up_while_recorded_leaves_a_message_only_if_they_spoke(
        speaks: bool, tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "voicemail.yaml")
    try:
        caller = sipp.Caller(f"hangs_up_recorded_{speaks}")
        if speaks:
            pcap = tmp_path / "message.pcap"
            _message_pcap(pcap, start_s=0.8, length_s=1.5)
            caller.play_pcap(pcap)
        # Hang up while the message is recorded: after the speech, before 1 s of silence.
        result = sipp.run(caller.pause(2500).caller_hangs_up(), wp.target, tmp_path)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert row["end_reason"] == "caller_hangup"
    recordings = [d for k, d in _events(wp.db, row["call_id"]) if k == "recording"]
    if speaks:
        assert len(recordings) == 1 and recordings[0]["heard_voice"] is True
        assert _recordings(wp.var_dir) == [Path(recordings[0]["path"])]
    else:
        assert recordings == [] and _recordings(wp.var_dir) == []


class _PinCheck(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        body = b'{"name": "Ann"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_sensitive_pin_reaches_the_lookup_and_neither_the_log_nor_the_store(
        tmp_path: Path) -> None:
    handler = type("Handler", (_PinCheck,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    crm = f"http://127.0.0.1:{server.server_address[1]}"
    wp = start_worker(tmp_path, flow=FLOWS / "sensitive.yaml",
                      env={"IVR_FLOWS_VARS": json.dumps({"crm_url": crm})})
    try:
        stream = tmp_path / "pin.pcap"
        write_call_pcap(stream, [(0.8, "9"), (1.1, "7"), (1.4, "3"), (1.7, "1"), (2.0, "#")])
        caller = sipp.Caller("sensitive_pin").play_pcap(stream)
        result = sipp.run(caller.ivr_hangs_up(20000), wp.target, tmp_path)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
        server.shutdown()
        server.server_close()
        thread.join()
    assert row["end_reason"] == "verified"
    assert handler.seen == ["/pins/9731"]  # the lookup had the digits
    evs = _events(wp.db, row["call_id"])
    assert [d["digit"] for k, d in evs if k == "dtmf"] == ["X"] * 5
    assert [d["digits"] for k, d in evs if k == "collect.done"] == ["XXXX"]
    log = "".join(wp.lines)
    assert '"call.dtmf"' in log and "/pins/" not in log
    raw = b"".join(p.read_bytes() for p in wp.var_dir.glob("ivr.sqlite3*"))
    for text, where in ((log.encode(), "log"), (raw, "store")):
        assert b"9731" not in text, where
        for digit in b"9731":
            for spaced in (b'"digit": "%c"', b'"digit":"%c"'):
                assert spaced % digit not in text, where
