"""Speech menus end to end: a sipp caller (its RTP from an RtpPeer socket that also keeps
what it hears) speaks espeak-ng utterances through G.711 to a real worker, which sends them
to a real speech service (PocketSphinx). The spoken choice is confirmed ("did you say
support?") by a spoken yes; speaking over the prompt cuts it (seen in the RTP the caller
receives); keys still work in the same menu."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ivr.flow.speech import YES_PHRASES
from media.g711 import ulaw_encode
from tests import sipp
from tests import speech_audio as sa
from tests.conftest import FLOWS, WorkerProcess, ended_call, start_worker
from tests.rtp_peer import RtpPeer

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]

FRAME_S = 0.02


@pytest.fixture(scope="module")
def speech_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("speech")
    sock = tmp / "var" / "run" / "speech.sock"
    service = subprocess.Popen([sys.executable, "-m", "ivr.speech.service", "--socket",
                                str(sock), "--processes", "1"], stdout=subprocess.PIPE,
                               text=True)
    assert service.stdout is not None and "ready" in service.stdout.readline()
    worker = start_worker(tmp, FLOWS / "speech.yaml")
    yield worker
    worker.stop()
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=10)
    service.stdout.close()


@dataclass
class SpeakingCaller:
    """sipp for the SIP; an RtpPeer sends low noise, and each utterance at its time (s after
    the first packet heard), and keeps what it hears."""

    target: str
    workdir: Path
    script: list[tuple[float, np.ndarray]]
    talk_ms: int = 20000
    peer: RtpPeer = field(init=False)
    sent_at: list[float] = field(default_factory=list)  # monotonic send time of each
    result: sipp.SippResult | None = None

    def __post_init__(self) -> None:
        self.peer = RtpPeer(ssrc=0x5EEC0001)

    def run(self) -> sipp.SippResult:
        scenario = sipp.Caller("speaking_caller", media_port=self.peer.port,
                               telephone_event=False).ivr_hangs_up(self.talk_ms)

        def call() -> None:
            self.result = sipp.run(scenario, self.target, self.workdir,
                                   timeout_s=self.talk_ms // 1000 + 30)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        to = self.peer.first_source(timeout_s=15)
        start = time.monotonic()
        floor = sa.noise(self.talk_ms / 1000, -60)
        timeline = floor.copy()
        for at_s, pcm in self.script:
            i = int(at_s * 8000)
            timeline[i:i + pcm.size] = pcm[: max(0, timeline.size - i)]
        starts = {int(at_s / FRAME_S) for at_s, _ in self.script}
        for n in range(timeline.size // 160):
            if t is not None and not t.is_alive():
                break
            if n in starts:
                self.sent_at.append(time.monotonic())
            self.peer._ts += 160
            try:
                self.peer.sock.sendto(self.peer._packet(0, n == 0, ulaw_encode(
                    timeline[n * 160:(n + 1) * 160])), to)
            except OSError:
                break
            time.sleep(max(0.0, start + (n + 1) * FRAME_S - time.monotonic()))
        t.join(timeout=self.talk_ms / 1000 + 30)
        self.peer.close()
        assert self.result is not None
        return self.result

    def prompt_stopped_after(self, t0: float) -> float:
        """When the caller stopped hearing the prompt after ``t0``: the arrival time of the
        first packet of a run of 10 quiet ones (200 ms)."""
        from media.g711 import ulaw_decode

        quiet = 0
        first_quiet = float("inf")
        for at, _, data in list(self.peer.received):
            if at < t0 or len(data) <= 12:
                continue
            rms = float(np.sqrt(np.mean(ulaw_decode(data[12:]).astype(np.float64) ** 2)))
            quiet = quiet + 1 if rms < 100 else 0
            if quiet == 1:
                first_quiet = at
            if quiet >= 10:
                return first_quiet
        return float("inf")


def test_a_spoken_choice_cuts_the_prompt_is_confirmed_by_a_spoken_yes_and_taken(
        speech_worker: WorkerProcess, tmp_path: Path) -> None:
    said = sa.speech("technical support")
    yes = sa.speech("yes")
    caller = SpeakingCaller(speech_worker.target, tmp_path,
                            [(1.5, said), (1.5 + said.size / 8000 + 2.5, yes)])
    result = caller.run()
    assert result.ok, result.output + result.errors
    row, events = ended_call(speech_worker.db)
    kinds = [k for k, _ in events]
    assert "speech.started" in kinds
    results = [d for k, d in events if k == "speech.result"]
    assert results and results[0]["text"] == "technical support"
    assert results[0]["decision"] == "confirm"
    assert [d for k, d in events if k == "speech.confirm"][0]["text"] in YES_PHRASES
    assert row["menu_path"] == "main_menu:speech:confirmed:support"
    # barge-in: the menu prompt (13 s long) stopped soon after the caller began speaking
    onset = caller.sent_at[0]
    stopped = caller.prompt_stopped_after(onset)
    latency_ms = (stopped - onset) * 1000
    print(f"barge-in: prompt stopped {latency_ms:.0f} ms after speech onset")
    assert 0 < latency_ms < 1500  # min_speech_ms 150 + polls; well before the prompt's end


def test_a_key_still_chooses_in_the_speech_menu(speech_worker: WorkerProcess,
                                                tmp_path: Path) -> None:
    from tests.rtp import write_call_pcap

    stream = tmp_path / "key.pcap"
    write_call_pcap(stream, [(1.0, "1")])
    caller = sipp.Caller("speech_menu_key").play_pcap(stream).ivr_hangs_up(15000)
    result = sipp.run(caller, speech_worker.target, tmp_path, timeout_s=40)
    assert result.ok, result.output + result.errors
    row, _ = ended_call(speech_worker.db)
    assert row["menu_path"] == "main_menu:1"


def test_a_spoken_yes_answers_a_yes_no_question_and_the_flow_takes_the_yes_branch(
        speech_worker: WorkerProcess, tmp_path: Path) -> None:
    said = sa.speech("my order")
    yes = sa.speech("yes")
    # "yes" while "Is this about your last order? ..." plays (it starts ~1 s after "my order")
    caller = SpeakingCaller(speech_worker.target, tmp_path,
                            [(1.5, said), (1.5 + said.size / 8000 + 2.5, yes)])
    result = caller.run()
    assert result.ok, result.output + result.errors
    _, events = ended_call(speech_worker.db)
    asked = [d for k, d in events if k == "speech.result" and d["node"] == "about_order"]
    assert asked and asked[0]["answer"] == "yes", asked
    assert ("speech.started", "about_order") in [(k, d.get("node")) for k, d in events]
    assert [d["answer"] for k, d in events if k == "collect.done"] == ["yes"]
    assert [d["node"] for k, d in events if k == "node"][-2:] == ["order_route", "last_order"]
