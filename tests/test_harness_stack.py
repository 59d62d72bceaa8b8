"""ivr-harness against real peers: the whole stack (`ivr run`: Kamailio, controller, pooled
workers) on the shipped default flow, and an independent sipp UAS whose audio and received
digits the test controls.

The shipped scenarios (tests/scenarios/) and the ones written to fail
(tests/scenarios_failing/) run at the same time, from two harness processes, so the module
costs about one long call."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.dtmf import InbandDtmfDetector
from media.pcm import read_wav_mono16
from tests import sipp
from tests.conftest import ROOT, StackProcess, start_stack, start_worker
from tests.rtp_peer import RtpPeer, received_pcm, stream_pcm

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]

SCENARIOS = ROOT / "tests" / "scenarios"
FAILING = ROOT / "tests" / "scenarios_failing"
LOAD_SCENARIO = ROOT / "bench" / "scenarios" / "language_menu.yaml"
# Harness phones: SIP 19500-19599 and RTP 24000-24999 (outside conftest's port plan).
_HARNESS_PORTS = iter(range(19500, 19600, 10))


def harness(*args: str) -> subprocess.Popen[str]:
    n = next(_HARNESS_PORTS)
    return subprocess.Popen(
        [sys.executable, "-m", "ivr.harness.cli", "run", *args, "--sip-port", str(n),
         "--rtp-port", str(24000 + (n - 19500) * 10)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], out: Path, timeout_s: float = 120
           ) -> tuple[int, str, dict[str, Any]]:
    text, _ = proc.communicate(timeout=timeout_s)
    data = json.loads(out.read_text()) if out.is_file() else {}
    return proc.returncode, text, data


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    # 5 workers of 2 callers each: the two suites (3 calls each at most) and the load run
    # (4 calls) fit at once
    sp = start_stack(tmp_path_factory.mktemp("harness-stack"), workers=5)
    yield sp
    sp.stop()


@pytest.fixture(scope="module")
def suites(stack: StackProcess, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[int, str, dict[str, Any]]]:
    """Both scenario folders run at once against the stack: (exit code, output, JSON)."""
    tmp = tmp_path_factory.mktemp("harness-runs")
    dial = f"sip:ivr@127.0.0.1:{stack.port}"
    db = str(stack.db)
    runs = {}
    for name, folder in (("pass", SCENARIOS), ("fail", FAILING)):
        out = tmp / f"{name}.json"
        runs[name] = (harness(str(folder), "--dial", dial, "--db", db, "--parallel", "3",
                              "--json", str(out), "--junit", str(tmp / f"{name}.xml")), out)
    out = tmp / "load.json"
    load = subprocess.Popen(
        [sys.executable, "-m", "ivr.harness.cli", "load", str(LOAD_SCENARIO), "--dial", dial,
         "--calls", "4", "--rate", "4/s", "--total", "20", "--duration", "120s", "--no-live",
         "--report", str(tmp / "load"), "--sip-port", "19600", "--rtp-port", "25000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs["load"] = (load, out)
    return {name: finish(proc, out) for name, (proc, out) in runs.items()}


def test_every_shipped_scenario_passes_against_the_default_flow(
        suites: dict[str, tuple[int, str, dict[str, Any]]]) -> None:
    rc, text, data = suites["pass"]
    assert rc == 0, text
    shipped = sorted(SCENARIOS.glob("*.yaml"))
    assert data["passed"] == len(shipped) and data["failed"] == 0
    for call in data["calls"]:
        assert call["one_way_audio"] is False and call["rx_packets"] > 0
        assert call["key_to_prompt_ms"], call["name"]  # every scenario presses a key
        assert call["mos"] is not None and call["mos"] > 3.5


def test_scenarios_written_to_fail_fail_naming_the_step_and_what_was_heard(
        suites: dict[str, tuple[int, str, dict[str, Any]]]) -> None:
    rc, text, data = suites["fail"]
    assert rc == 1, text
    by_name = {c["scenario"].rsplit("/", 1)[-1]: c for c in data["calls"]}
    assert not any(c["ok"] for c in by_name.values())
    wrong = by_name["wrong_prompt.yaml"]
    assert wrong["failed_step"] == "step 1 (expect_prompt, line 5)"
    assert "expected en-US:goodbye" in wrong["failure"]
    assert "heard prompts en-US:language_menu" in wrong["failure"]
    branch = by_name["wrong_branch.yaml"]
    assert branch["failed_step"] == "step 4 (expect_prompt, line 8)"
    assert "heard prompts en-US:enter_account" in branch["failure"]
    hang = by_name["no_hangup.yaml"]
    assert hang["failed_step"] == "step 2 (expect_hangup, line 6)"
    assert hang["failure"].startswith("no hang-up within 2 s; heard prompts zh-CN:language_menu")
    assert "FAIL step 4 (expect_prompt, line 8)" in text  # printed as it happens


def test_a_load_run_of_20_calls_reports_the_counts_the_stack_recorded(
        suites: dict[str, tuple[int, str, dict[str, Any]]], stack: StackProcess) -> None:
    rc, text, data = suites["load"]
    assert (data["started"], data["passed"], data["failed"]) == (20, 20, 0), data["failures"]
    assert data["plan"]["processes"] == 1
    ids = data["sip_call_ids"]
    assert len(set(ids)) == 20
    con = sqlite3.connect(stack.db)
    try:
        rows = con.execute(
            f"SELECT end_reason, menu_path FROM calls WHERE sip_call_id IN "
            f"({','.join('?' * len(ids))})", ids).fetchall()
    finally:
        con.close()
    assert len(rows) == 20
    assert all(r == ("caller_hangup", "choose_language:1") for r in rows), rows
    key = data["timings_ms"]["key_to_prompt_ms"]
    assert key["count"] == 20 and key["p50"] <= key["p99"] <= key["max"]
    page = Path(text.rsplit("report ", 1)[-1].split(" and")[0]).read_text()
    assert page.count("<svg") == 4  # one chart of p50/p90/p99 over time per timing
    assert rc == 0


def _events(peer: RtpPeer) -> list[int]:
    """RFC 4733 event codes the peer received (one per digit: the end packets' event)."""
    seen: list[int] = []
    for _, _, data in list(peer.received):
        if len(data) >= 16 and data[1] & 0x7F == 101 and data[13] & 0x80:
            if not seen or seen[-1] != data[12]:
                seen.append(data[12])
    return seen


def test_the_harness_hears_a_known_prompt_from_an_independent_peer_and_sends_its_digits(
        tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0x5EE50001)
    scenario = tmp_path / "peer.yaml"
    scenario.write_text("""\
name: peer
dial: sip:peer@127.0.0.1
steps:
  - expect_prompt: {set: en-US, name: welcome, within_ms: 3000}
  - press: {digits: "5", method: sip-info}
  - press: {digits: "3", method: rfc4733}
  - press: {digits: "7", method: inband}
  - wait: 300
  - say: "hello there"
  - hangup:
""")
    menu = read_wav_mono16(ROOT / "prompts" / "en-US" / "welcome.wav")[0]
    with sipp.uas("harness_peer.xml", tmp_path, media_port=peer.port) as (uas, uri):
        def play() -> None:  # symmetric RTP: answer where the harness sends from
            try:
                stream_pcm(peer, peer.first_source(timeout_s=15),
                           np.concatenate((np.zeros(2400, np.int16), menu)))
            except AssertionError:
                pass
        threading.Thread(target=play, daemon=True).start()
        out = tmp_path / "peer.json"
        rc, text, data = finish(harness(str(scenario), "--dial", uri, "--json", str(out)), out)
        assert rc == 0, text
        assert uas.wait(timeout=20) == 0, "sipp: the INFO did not carry 5"
    peer.close()
    assert _events(peer) == [3]
    heard_by_peer = received_pcm(peer)
    detector = InbandDtmfDetector(8000)
    assert [d.digit for d in detector.process(heard_by_peer)] == ["7"]
    # the speech came after the digit: over half a second of it above -40 dBFS
    said = heard_by_peer[-8000 * 3:].astype(np.float64)
    frames = said[: said.size // 160 * 160].reshape(-1, 160)
    loud = np.sqrt((frames ** 2).mean(axis=1)) > 32768 * 10 ** (-40 / 20)
    assert loud.sum() * 0.02 > 0.5
    call = data["calls"][0]
    assert call["steps"][0]["detail"].startswith("en-US:welcome")


def test_an_ivr_hang_up_is_expected_with_its_cause_and_checked_in_the_record(
        tmp_path: Path) -> None:
    worker = start_worker(tmp_path, flow=ROOT / "tests" / "flows" / "short.yaml")
    try:
        scenario = tmp_path / "two.yaml"
        scenario.write_text("""\
name: two says goodbye
dial: sip:ivr@127.0.0.1
steps:
  - expect_prompt: {set: en-US, name: please_wait, within_ms: 3000}
  - press: "2"
  - expect_prompt: {text: "goodbye"}
  - expect_hangup: {within_s: 5, cause: 200}
  - check: {cdr.end_reason: chose_two, cdr.hangup_by: ivr, event: menu.choice}
""")
        out = tmp_path / "two.json"
        rc, text, data = finish(harness(str(scenario), "--dial",
                                        f"sip:ivr@{worker.target}", "--db", str(worker.db),
                                        "--json", str(out)), out)
        assert rc == 0, text
        steps = data["calls"][0]["steps"]
        assert steps[2]["detail"].startswith("en-US:goodbye")
        assert steps[3]["detail"] == "hung up by the far end (200 Normal call clearing)"
    finally:
        worker.stop()
