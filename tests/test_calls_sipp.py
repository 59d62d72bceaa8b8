"""End-to-end calls from sipp to a real worker: SIP, RTP and the call record."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from media.g711 import ulaw_decode
from tests import sipp
from tests.conftest import FLOWS, WorkerProcess, start_worker
from tests.rtp import dtmf_tones, write_rtp_pcap

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]


def cdr(db: Path, index: int = -1) -> sqlite3.Row:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = con.execute("SELECT * FROM calls ORDER BY arrived_at").fetchall()
    con.close()
    assert rows, "no call was recorded"
    return rows[index]


def events(db: Path, call_id: str) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id",
                       (call_id,)).fetchall()
    con.close()
    return rows


def wait_ended(db: Path, timeout_s: float = 10.0) -> sqlite3.Row:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = cdr(db)
        if row["ended_at"] is not None:
            return row
        time.sleep(0.1)
    raise AssertionError("the call record never got its end")


def test_answered_call_hears_the_welcome_prompt_as_rtp(worker: WorkerProcess,
                                                        tmp_path: Path) -> None:
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(0.2)
    port = rtp.getsockname()[1]
    packets: list[bytes] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                packets.append(rtp.recv(2048))
            except TimeoutError:
                pass

    t = threading.Thread(target=receive)
    t.start()
    caller = sipp.Caller("rtp_reaches_caller", media_port=port).pause(3000).caller_hangs_up()
    result = sipp.run(caller, worker.target, tmp_path)
    stop.set()
    t.join()
    rtp.close()
    assert result.ok, result.output + result.errors
    # 20 ms PCMU packets from answer to BYE: about 150 in 3 s.
    assert 120 <= len(packets) <= 170, len(packets)
    assert all(p[1] & 0x7F == 0 for p in packets), "payload type is not PCMU"
    audio = ulaw_decode(b"".join(p[12:] for p in packets))
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(audio.astype(float) ** 2)) / 32768)
    assert rms_dbfs > -35, f"the prompt is silent ({rms_dbfs:.1f} dBFS)"
    row = wait_ended(worker.db)
    assert row["answered_at"] is not None
    assert row["codec"] == "PCMU"
    ending = (row["end_reason"], row["hangup_by"], row["sip_code"])
    assert ending == ("caller_hangup", "caller", 200)


@pytest.mark.parametrize("codec", ["PCMA", "G722"])
def test_pcma_and_g722_callers_are_answered_in_their_codec(codec: str, worker: WorkerProcess,
                                                          tmp_path: Path) -> None:
    caller = sipp.Caller(f"codec_{codec}", codecs=[codec]).pause(1500).caller_hangs_up()
    result = sipp.run(caller, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row = wait_ended(worker.db)
    assert row["codec"] == codec
    assert row["end_reason"] == "caller_hangup"


def test_a_callers_refer_is_refused_so_nobody_can_dial_out_through_the_ivr(
        worker: WorkerProcess, tmp_path: Path) -> None:
    caller = (sipp.Caller("refer_refused").pause(500)
              .refer("sip:+900123456@127.0.0.1:5999", expect=403).pause(300).caller_hangs_up())
    result = sipp.run(caller, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row = wait_ended(worker.db)
    assert row["end_reason"] == "caller_hangup"
    assert any("refused a REFER" in line for line in worker.lines)


def _route_check(worker: WorkerProcess, tmp_path: Path, caller: sipp.Caller, method: str) -> None:
    result = sipp.run(caller, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row = wait_ended(worker.db)
    assert row["menu_path"] == "main_menu:2"
    assert row["dtmf_method"] == method
    assert row["end_reason"] == "normal"
    assert row["hangup_by"] == "ivr"
    assert row["sip_code"] == 200
    assert row["last_node"] == "goodbye"
    assert row["from_uri"] == '"Test Caller" <sip:+15550100@127.0.0.1>'
    assert row["to_uri"].startswith("<sip:ivr@127.0.0.1")
    kinds = [k for k, _ in events(worker.db, row["call_id"])]
    assert kinds[:2] == ["arrived", "answered"]
    assert "menu.choice" in kinds and kinds[-1] == "ended"
    assert kinds.index("dtmf") < kinds.index("menu.choice")


def test_rfc2833_digit_routes_the_default_flow_to_support(worker: WorkerProcess,
                                                          tmp_path: Path) -> None:
    caller = sipp.Caller("rfc2833_two").pause(800).rfc2833("2").ivr_hangs_up()
    _route_check(worker, tmp_path, caller, "rfc4733")


def test_sip_info_digit_reaches_the_same_branch(worker: WorkerProcess, tmp_path: Path) -> None:
    caller = sipp.Caller("info_two").pause(800).sip_info("2").ivr_hangs_up()
    _route_check(worker, tmp_path, caller, "sip-info")


def test_inband_g711_digit_reaches_the_same_branch(worker: WorkerProcess, tmp_path: Path) -> None:
    pcap = tmp_path / "inband_2.pcap"
    write_rtp_pcap(pcap, dtmf_tones("2", tone_ms=120, lead_ms=100))
    caller = (sipp.Caller("inband_two", telephone_event=False)
              .pause(800).play_pcap(pcap).ivr_hangs_up())
    _route_check(worker, tmp_path, caller, "inband")


@pytest.mark.parametrize("digit", list("0123456789*#"))
def test_every_rfc2833_capture_is_recognised(digit: str, tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "keypad.yaml")
    try:
        label = {"*": "star", "#": "pound"}.get(digit, digit)
        caller = sipp.Caller(f"keypad_{label}")
        result = sipp.run(caller.pause(300).rfc2833(digit).ivr_hangs_up(10000), wp.target, tmp_path)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
        assert row["menu_path"] == f"menu:{digit}"
        assert row["dtmf_method"] == "rfc4733"
    finally:
        wp.stop()


def test_caller_hanging_up_mid_prompt_is_recorded_so(worker: WorkerProcess,
                                                     tmp_path: Path) -> None:
    caller = sipp.Caller("hangup_mid_prompt").pause(600).caller_hangs_up()
    result = sipp.run(caller, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row = wait_ended(worker.db)
    assert row["end_reason"] == "caller_hangup"
    assert row["hangup_by"] == "caller"
    assert row["last_node"] == "welcome"
    kinds = [k for k, _ in events(worker.db, row["call_id"])]
    assert "flow.abandoned" in kinds


def test_silent_call_ends_as_the_flow_says(short_worker: WorkerProcess, tmp_path: Path) -> None:
    caller = sipp.Caller("silent").ivr_hangs_up(20000)  # sipp fails if no BYE by then
    result = sipp.run(caller, short_worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row = wait_ended(short_worker.db)
    assert (row["end_reason"], row["hangup_by"]) == ("no_input", "ivr")
    assert row["flow"] == "short" and row["flow_version"] == 7
    kinds = [k for k, _ in events(short_worker.db, row["call_id"])]
    assert kinds.count("menu.no_input") == 2  # the first try and one retry
    assert "menu.failed" in kinds


def test_fifth_concurrent_call_is_refused_at_once(worker: WorkerProcess, tmp_path: Path) -> None:
    holders = sipp.Caller("holder").pause(6000).caller_hangs_up()
    scenario = tmp_path / "holder.xml"
    scenario.write_text(holders.render())
    bg = subprocess.Popen(
        [sipp.SIPP, worker.target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", "17000",
         "-mp", "27000", "-m", "4", "-l", "4", "-r", "20", "-timeout", "30s", "-nostdin"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum('"call.answered"' in line for line in worker.lines) >= 4:
                break
            time.sleep(0.05)
        assert sum('"call.answered"' in line for line in worker.lines) == 4
        refused = (Path(__file__).parent / "sipp" / "expect_busy.xml").read_text()
        result = sipp.run(refused, worker.target, tmp_path, timeout_s=10)
        assert result.ok, result.output + result.errors  # 486, not a retransmitted silence
        # refused while the four holders were still up (they hang up after 6 s)
        assert not any('"call.ended"' in line for line in worker.lines)
    finally:
        out, _ = bg.communicate(timeout=30)
    assert bg.returncode == 0, out
    con = sqlite3.connect(worker.db)
    n_calls = con.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    con.close()
    assert n_calls == 4  # the refused call never reached a flow


def clock_threads(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() == "clock":
                out.append(int(tid))
    return out


def test_the_media_clock_runs_at_realtime_priority_during_a_call(
        worker: WorkerProcess, tmp_path: Path) -> None:
    allowed = subprocess.run(["chrt", "-r", "1", "true"], capture_output=True).returncode == 0
    scenario = tmp_path / "held.xml"
    scenario.write_text(sipp.Caller("held_rt").pause(3000).caller_hangs_up().render())
    bg = subprocess.Popen(
        [sipp.SIPP, worker.target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", "17010",
         "-mp", "27010", "-m", "1", "-timeout", "20s", "-nostdin"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                '"call.answered"' in line for line in worker.lines):
            time.sleep(0.05)
        time.sleep(0.3)  # the welcome prompt is connected: the bridge clock runs
        clocks = clock_threads(worker.proc.pid)
        assert len(clocks) == 1, clocks
        # PJLIB names the new clock thread from inside it, so the worker may find it a few
        # pump turns after the connection (10 ms apart); without that polling it is not
        # raised until the next prompt, seconds later.
        deadline = time.monotonic() + 0.5
        policy = os.sched_getscheduler(clocks[0])
        while allowed and policy != os.SCHED_RR and time.monotonic() < deadline:
            time.sleep(0.05)
            policy = os.sched_getscheduler(clocks[0])
        if allowed:
            assert policy == os.SCHED_RR
            assert os.sched_getparam(clocks[0]).sched_priority == 10  # the default
        else:
            assert policy == os.SCHED_OTHER
            assert any("media clock left at normal priority" in line for line in worker.lines)
    finally:
        out, _ = bg.communicate(timeout=30)
    assert bg.returncode == 0, out


def test_sigterm_drains_refusing_new_calls_and_ends_running_ones(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, env={"IVR_WORKER_DRAIN_TIMEOUT_S": "3"})
    scenario = tmp_path / "held.xml"
    scenario.write_text(sipp.Caller("held").ivr_hangs_up(30000).render())
    bg = subprocess.Popen(
        [sipp.SIPP, wp.target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", "17100",
         "-mp", "27100", "-m", "1", "-timeout", "30s", "-nostdin"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wp.wait_for('"call.answered"')
        wp.proc.terminate()
        wp.wait_for('"new": "draining"')
        refused = (Path(__file__).parent / "sipp" / "expect_unavailable.xml").read_text()
        result = sipp.run(refused, wp.target, tmp_path, timeout_s=10)
        assert result.ok, result.output + result.errors
        out, _ = bg.communicate(timeout=30)
        assert bg.returncode == 0, out
        assert wp.proc.wait(timeout=20) == 0
    finally:
        wp.stop()
        if bg.poll() is None:
            bg.kill()
    row = cdr(wp.db)
    assert (row["end_reason"], row["hangup_by"]) == ("shutdown", "system")
    assert row["ended_at"] - row["answered_at"] >= 2.5
