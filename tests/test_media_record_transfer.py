"""The media layer's recording, voice level and blind transfer, against sipp callers.

A `media.phone.Phone` runs in-process (``tests/phone_harness.py``); each test answers the
sipp caller's leg itself and drives it. The callers' audio is PCMU RTP built by
``tests/rtp.py``; the transfer scenarios are ``tests/sipp/transfer_*.xml``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from media import (
    LegBusyError,
    LegHungUp,
    MediaError,
)
from media.inband import VOICE_THRESHOLD_DBFS, LevelMeter
from tests import sipp
from tests.phone_harness import (
    band_power,
    dominant_hz,
    read_wav,
    running_phone,
    tone,
    wav_is_closed,
    write_wav,
)
from tests.rtp import write_rtp_pcap

SIPP_DIR = Path(__file__).parent / "sipp"
CALLER_TONE_HZ = 440.0
PROMPT_TONE_HZ = 1500.0
TRANSFER_TARGET = "sip:queue-7@transfer.example.invalid"

sip = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]


def run_sipp(caller: sipp.Caller | str, target: str, workdir: Path,
             timeout_s: int = 30, extra: list[str] | None = None) -> asyncio.Future[sipp.SippResult]:
    """sipp in a thread, so the test's loop keeps driving the leg meanwhile."""
    return asyncio.ensure_future(
        asyncio.to_thread(sipp.run, caller, target, workdir, timeout_s=timeout_s, extra=extra))


async def finished(job: asyncio.Future[sipp.SippResult], timeout_s: float = 45) -> None:
    result = await asyncio.wait_for(job, timeout_s)
    assert result.ok, result.output + result.errors


# -- the level meter alone ---------------------------------------------------------------


def test_level_meter_finds_the_last_loud_frame_of_a_batch() -> None:
    meter = LevelMeter(8000, started_at_s=100.0)
    quiet = tone(440, 0.2, level_dbfs=VOICE_THRESHOLD_DBFS - 10)  # RMS well below
    loud = tone(440, 0.1, level_dbfs=VOICE_THRESHOLD_DBFS + 10)
    meter.feed(quiet, now_s=100.2)
    assert not meter.heard_voice
    assert meter.trailing_silence_s(100.5) == pytest.approx(0.5)
    # 100 ms loud then 300 ms quiet, in one batch that ends at 101.0: voice ended at 100.7.
    meter.feed(np.concatenate([loud, tone(440, 0.3, level_dbfs=-60)]), now_s=101.0)
    assert meter.heard_voice
    assert meter.trailing_silence_s(101.0) == pytest.approx(0.3, abs=0.021)
    # A partial frame waits for the rest of it.
    meter.feed(loud[:100], now_s=101.1)
    assert meter.trailing_silence_s(101.1) == pytest.approx(0.4, abs=0.021)
    meter.feed(loud[100:160], now_s=101.12)
    assert meter.trailing_silence_s(101.12) == pytest.approx(0.0, abs=0.001)


# -- recording ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["PCMU"])
@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
def test_recording_holds_what_the_caller_says_not_the_prompt(codec: str, tmp_path: Path) -> None:
    pcap = tmp_path / "tone.pcap"
    write_rtp_pcap(pcap, tone(CALLER_TONE_HZ, 5.0))
    prompt = write_wav(tmp_path / "prompt.wav", tone(PROMPT_TONE_HZ, 4.0))
    wav = tmp_path / "voicemail.wav"
    caller = sipp.Caller("records_caller", codecs=[codec]).play_pcap(pcap)
    caller = caller.ivr_hangs_up(10000)

    async def scenario() -> float:
        async with running_phone() as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, media = await h.answered_leg()
            assert media.codec == codec
            leg = probe.leg
            await leg.play([prompt])  # the caller hears 1500 Hz meanwhile
            await asyncio.sleep(0.3)
            await leg.start_recording(wav)
            assert leg.recording == wav
            with pytest.raises(LegBusyError):
                await leg.start_recording(tmp_path / "second.wav")
            started = time.monotonic()
            await asyncio.sleep(2.0)
            duration_s = await leg.stop_recording()
            elapsed = time.monotonic() - started
            assert leg.recording is None
            assert abs(duration_s - elapsed) < 0.3, (duration_s, elapsed)
            with pytest.raises(MediaError):
                await leg.stop_recording()
            await h.hang_up(probe)
            await finished(job)
            return duration_s

    duration_s = asyncio.run(scenario())
    assert wav_is_closed(wav)
    params, pcm = read_wav(wav)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    assert params.nframes / params.framerate == pytest.approx(duration_s)
    assert duration_s == pytest.approx(2.0, abs=0.3)
    body = pcm[800:]  # past the first 100 ms
    assert abs(dominant_hz(body, 8000) - CALLER_TONE_HZ) < 5
    caller_power = band_power(body, 8000, CALLER_TONE_HZ)
    assert band_power(body, 8000, PROMPT_TONE_HZ) < caller_power * 1e-4  # >= 40 dB down


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
def test_caller_hanging_up_mid_recording_leaves_a_closed_wav(tmp_path: Path) -> None:
    pcap = tmp_path / "tone.pcap"
    write_rtp_pcap(pcap, tone(CALLER_TONE_HZ, 4.0))
    wav = tmp_path / "cut_short.wav"
    caller = sipp.Caller("hangs_up_mid_recording").play_pcap(pcap).pause(1500).caller_hangs_up()

    async def scenario() -> tuple[float, float]:
        async with running_phone() as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, _ = await h.answered_leg()
            await probe.leg.start_recording(wav)
            started = time.monotonic()
            await probe.wait_for(LegHungUp)
            elapsed = time.monotonic() - started
            # Released by the phone at the end of the call, without stop_recording: the
            # header gets its lengths within a few clock ticks.
            deadline = time.monotonic() + 2.0
            while not wav_is_closed(wav) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert wav_is_closed(wav)
            duration_s = await probe.leg.stop_recording()
            await finished(job)
            return duration_s, elapsed

    duration_s, elapsed = asyncio.run(scenario())
    params, pcm = read_wav(wav)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    assert params.nframes / params.framerate == pytest.approx(duration_s)
    assert abs(duration_s - elapsed) < 0.3, (duration_s, elapsed)
    assert abs(dominant_hz(pcm[800:], 8000) - CALLER_TONE_HZ) < 5
