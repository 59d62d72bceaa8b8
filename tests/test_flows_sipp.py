"""The flow language end to end: sipp callers against a real worker running real flows."""

from __future__ import annotations

import json
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests import sipp
from tests.conftest import FLOWS, ROOT, WorkerProcess, ended_call, start_worker
from tests.rtp import write_call_pcap

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]

DEFAULT_FLOW = ROOT / "ivr" / "flows" / "default.yaml"




def test_default_flow_in_english_confirms_an_account_and_takes_a_voicemail(
        default_worker: WorkerProcess, tmp_path: Path) -> None:
    t = np.arange(8000 * 2) / 8000
    message = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    stream = tmp_path / "english.pcap"
    write_call_pcap(stream, [
        (0.6, "1"),                                     # English
        (1.3, "2"),                                     # support, during the welcome
        (3.5, "1"), (3.9, "2"), (4.3, "3"), (4.7, "4"), (5.1, "#"),   # the account
        (8.5, "1"),                                     # "if this is correct, press 1"
        (22.6, "#"),                                    # end of the message
    ], audio=[(20.0, message)])
    caller = sipp.Caller("english_voicemail").play_pcap(stream).pause(23500)
    result = sipp.run(caller.ivr_hangs_up(20000), default_worker.target, tmp_path,
                      timeout_s=90)
    assert result.ok, result.output + result.errors
    row, events = ended_call(default_worker.db)
    assert row["menu_path"] == "choose_language:1 main_menu:2"
    assert (row["end_reason"], row["hangup_by"]) == ("normal", "ivr")
    kinds = [k for k, _ in events]
    done = [d for k, d in events if k == "collect.done"]
    assert done == [{"node": "support", "var": "account", "digits": "1234"}]
    assert "queue.requested" in kinds and "queue.unavailable" in kinds
    recordings = [d for k, d in events if k == "recording"]
    assert len(recordings) == 1 and recordings[0]["heard_voice"] is True
    path = Path(recordings[0]["path"])
    assert path.is_file() and path.is_relative_to(default_worker.var_dir / "recordings")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        duration_s = w.getnframes() / w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert 2.0 < duration_s < 10  # from the beep to the caller's #
    spectrum = np.abs(np.fft.rfft(audio.astype(float)))
    peak_hz = np.argmax(spectrum) * w.getframerate() / len(audio)
    assert abs(peak_hz - 440) < 15, f"the message's tone is at {peak_hz:.0f} Hz"


def test_default_flow_in_mandarin_switches_the_prompt_set(default_worker: WorkerProcess,
                                                          tmp_path: Path) -> None:
    stream = tmp_path / "mandarin.pcap"
    write_call_pcap(stream, [(0.6, "2"),            # 普通话
                             (1.4, "1")])           # sales -> no agent -> voicemail prompt
    caller = sipp.Caller("mandarin").play_pcap(stream).pause(3500)
    result = sipp.run(caller.caller_hangs_up(), default_worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    row, events = ended_call(default_worker.db)
    assert row["menu_path"] == "choose_language:2 main_menu:1"
    assert ("language", {"node": "mandarin", "language": "zh-CN"}) in events
    assert row["end_reason"] == "caller_hangup"
    plays = [d["prompts"] for k, d in events if k == "play"]
    assert plays[0] == ["en-US:language_menu", "zh-CN:language_menu"]
    assert all(p.startswith("zh-CN:") for prompts in plays[1:] for p in prompts), plays


class _Customers(BaseHTTPRequestHandler):
    mode = "answer"

    def do_GET(self) -> None:  # noqa: N802
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "fail":
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"account": {"number": self.path.rsplit("/", 1)[-1],
                                       "balance": "12.05", "name": "Ann"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode, reason, detail", [
    ("answer", "found", None),
    ("slow", "lookup_failed", "no answer within 1.5 s"),
    ("fail", "lookup_failed", "HTTP 500"),
])
def test_lookup_against_a_customer_system_that_answers_is_slow_or_fails(
        mode: str, reason: str, detail: str | None, tmp_path: Path) -> None:
    handler = type("Handler", (_Customers,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    crm = f"http://127.0.0.1:{server.server_address[1]}"
    wp = start_worker(tmp_path, flow=FLOWS / "lookup.yaml",
                      env={"IVR_FLOWS_VARS": json.dumps({"crm_url": crm})})
    try:
        stream = tmp_path / f"keys_{mode}.pcap"
        write_call_pcap(stream, [(0.8, "5"), (1.1, "5"), (1.4, "5"), (1.7, "1"), (2.0, "#")])
        caller = sipp.Caller(f"lookup_{mode}").play_pcap(stream)
        result = sipp.run(caller.ivr_hangs_up(20000), wp.target, tmp_path)
        assert result.ok, result.output + result.errors
        row, events = ended_call(wp.db)
    finally:
        wp.stop()
        server.shutdown()
        server.server_close()
        thread.join()
    assert row["end_reason"] == reason
    if detail is None:
        assert ("lookup.done", {"node": "customer",
                                "vars": {"balance": "12.05", "name": "Ann"}}) in events
        plays = [d["prompts"] for k, d in events if k == "play"]
        # "twelve dollars and five cents", then goodbye
        assert ["en-US:num_12", "en-US:dollars", "en-US:and", "en-US:digit_5",
                "en-US:cents"] in plays
    else:
        failed = [d for k, d in events if k == "lookup.failed"]
        assert failed == [{"node": "customer", "error": detail}]
