"""The media layer's recording, voice level and blind transfer, against sipp callers.

A `media.phone.Phone` runs in-process (``tests/phone_harness.py``); each test answers the
sipp caller's leg itself and drives it. The callers' audio is PCMU RTP built by
``tests/rtp.py``; the transfer scenarios are ``tests/sipp/transfer_*.xml``.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest

from media import (
    DtmfMethod,
    DtmfReceived,
    LegBusyError,
    LegGoneError,
    LegHungUp,
    MediaError,
    TransferResult,
)
from media.inband import VOICE_THRESHOLD_DBFS, LevelMeter
from tests import sipp
from tests.phone_harness import (
    band_power,
    dominant_hz,
    read_wav,
    running_phone,
    silence,
    tone,
    wav_is_closed,
    write_wav,
)
from tests.rtp import dtmf_tones, write_rtp_pcap

SIPP_DIR = Path(__file__).parent / "sipp"
CALLER_TONE_HZ = 440.0
PROMPT_TONE_HZ = 1500.0
TRANSFER_TARGET = "sip:queue-7@transfer.example.invalid"

needs_sipp = pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")


def run_sipp(caller: sipp.Caller | str, target: str, workdir: Path, timeout_s: int = 30,
             extra: list[str] | None = None) -> asyncio.Future[sipp.SippResult]:
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


def assert_tone_throughout(pcm: np.ndarray, freq_hz: float, chunk_ms: int = 100) -> None:
    """Every whole ``chunk_ms`` of ``pcm`` (8 kHz) is the tone ``freq_hz``: nothing lost or
    inserted in the recording (a gap would be a silent chunk)."""
    n = 8 * chunk_ms
    chunks = [pcm[i:i + n] for i in range(0, pcm.size - n + 1, n)]
    assert chunks, "nothing recorded"
    off = [i for i, c in enumerate(chunks) if abs(dominant_hz(c, 8000) - freq_hz) >= 15
           or float(np.sqrt(np.mean(c.astype(np.float64) ** 2))) < 100]
    assert not off, f"chunks {off} of {len(chunks)} are not the {freq_hz} Hz tone"


@pytest.mark.sip
@needs_sipp
def test_recording_holds_what_the_caller_says_not_the_prompt(tmp_path: Path) -> None:
    codec = "PCMU"
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
            with pytest.raises(ValueError):
                await leg.start_recording(tmp_path / "voicemail.mp3")
            await asyncio.sleep(0.3)
            await leg.start_recording(wav)
            assert leg.recording == wav
            with pytest.raises(LegBusyError):
                await leg.start_recording(tmp_path / "second.wav")
            await asyncio.sleep(2.0)
            duration_s = await leg.stop_recording()
            assert leg.recording is None
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
    # at least half the 2 s it was left running, at most the caller's 5 s tone, and the
    # caller's tone all through: no gap, no stretch of anything else
    assert 1.0 <= duration_s <= 5.0
    body = pcm[800:]  # past the first 100 ms
    assert_tone_throughout(body, CALLER_TONE_HZ)
    caller_power = band_power(body, 8000, CALLER_TONE_HZ)
    assert band_power(body, 8000, PROMPT_TONE_HZ) < caller_power * 1e-4  # >= 40 dB down


@pytest.mark.sip
@needs_sipp
def test_caller_hanging_up_mid_recording_leaves_a_closed_wav(tmp_path: Path) -> None:
    pcap = tmp_path / "tone.pcap"
    write_rtp_pcap(pcap, tone(CALLER_TONE_HZ, 4.0))
    wav = tmp_path / "cut_short.wav"
    caller = sipp.Caller("hangs_up_mid_recording").play_pcap(pcap).pause(1500).caller_hangs_up()

    async def scenario() -> float:
        async with running_phone() as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, _ = await h.answered_leg()
            await probe.leg.start_recording(wav)
            await probe.wait_for(LegHungUp)
            # Released by the phone at the end of the call, without stop_recording: the
            # header gets its lengths within a few clock ticks.
            deadline = time.monotonic() + 2.0
            while not wav_is_closed(wav) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert wav_is_closed(wav)
            with pytest.raises(LegGoneError):
                await probe.leg.start_recording(tmp_path / "too_late.wav")
            duration_s = await probe.leg.stop_recording()
            await finished(job)
            return duration_s

    duration_s = asyncio.run(scenario())
    params, pcm = read_wav(wav)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    assert params.nframes / params.framerate == pytest.approx(duration_s)
    # the caller hung up 1.5 s into a 4 s tone: what was recorded is that tone, to the end
    assert 0.2 <= duration_s <= 4.0
    assert_tone_throughout(pcm[800:], CALLER_TONE_HZ)


# -- voice level -------------------------------------------------------------------------


@pytest.mark.sip
@needs_sipp
@pytest.mark.parametrize("telephone_event", [False, True], ids=["inband-tap", "level-tap"])
def test_trailing_silence_grows_once_the_caller_stops(telephone_event: bool,
                                                      tmp_path: Path) -> None:
    # 0.2 s quiet, a 1 s key tone ("5", so the in-band detector has something to find), then
    # 3 s of silence.
    pcap = tmp_path / "tone_then_silence.pcap"
    write_rtp_pcap(pcap, np.concatenate([dtmf_tones("5", tone_ms=1000, gap_ms=0),
                                         silence(3.0)]))
    caller = (sipp.Caller("tone_then_silence", telephone_event=telephone_event)
              .play_pcap(pcap).pause(4600).caller_hangs_up())

    async def scenario() -> None:
        async with running_phone() as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, media = await h.answered_leg()
            assert media.inband_dtmf is not telephone_event
            leg = probe.leg
            await leg.start_recording(tmp_path / "message.wav")
            started = asyncio.get_running_loop().time()
            samples: list[tuple[float, float, bool]] = []
            while leg.ended is None and asyncio.get_running_loop().time() - started < 4.2:
                await asyncio.sleep(0.05)
                samples.append((asyncio.get_running_loop().time() - started,
                                leg.trailing_silence_s, leg.heard_voice))
            await leg.stop_recording()
            assert leg.heard_voice  # kept after the recording stopped
            await probe.wait_for(LegHungUp)
            await finished(job)
            during = [s for s in samples if s[2] and s[1] < 0.1]
            assert during, f"the tone was never heard: {samples}"
            tone_end = during[-1][0]
            assert 0.8 < tone_end < 2.0, samples
            late = [s for s in samples if s[0] > tone_end + 1.5]
            assert late and all(s[2] for s in late), samples
            for at, trailing, _ in late:  # grows with the clock, within a poll or two
                assert abs(trailing - (at - tone_end)) < 0.2, (at, trailing, tone_end)
            assert max(s[1] for s in samples) > 1.0
            digits = [(e.digit, e.method) for e in probe.of(DtmfReceived)]
            # The in-band tap is shared with the level meter; a telephone-event leg gets a
            # level-only tap, which reports no digits (they would come as RTP events).
            assert digits == ([] if telephone_event else [("5", DtmfMethod.INBAND)])

    asyncio.run(scenario())


@pytest.mark.sip
@needs_sipp
def test_a_silent_caller_is_never_heard(tmp_path: Path) -> None:
    pcap = tmp_path / "silence.pcap"
    write_rtp_pcap(pcap, silence(3.5))
    caller = sipp.Caller("silent_caller").play_pcap(pcap).ivr_hangs_up(10000)

    async def scenario() -> None:
        async with running_phone() as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, _ = await h.answered_leg()
            leg = probe.leg
            await leg.watch_level(True)
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(2.5)
            assert not leg.heard_voice
            assert leg.trailing_silence_s == pytest.approx(
                asyncio.get_running_loop().time() - started, abs=0.15)
            tap = leg._inband
            assert tap is not None and not tap.detect_dtmf
            assert tap.frames_seen > 100  # 20 ms frames of silence did arrive
            await leg.watch_level(False)
            frozen = leg.trailing_silence_s
            await asyncio.sleep(0.3)
            assert leg.trailing_silence_s == frozen
            assert len(tap._frames) <= 2  # the level-only tap was disconnected
            await h.hang_up(probe)
            await finished(job)

    asyncio.run(scenario())


# -- blind transfer ----------------------------------------------------------------------


def refer_to_logged(workdir: Path) -> str:
    logs = list(workdir.glob("*_logs.log")) + list(workdir.glob("refer.log"))
    text = "".join(p.read_text(errors="replace") for p in logs)
    found = re.findall(r"Refer-To: (.*)", text)
    assert found, f"sipp logged no Refer-To: {text!r}"
    return str(found[-1]).strip()


@pytest.mark.sip
@needs_sipp
def test_accepted_blind_transfer_reports_each_notify(tmp_path: Path) -> None:
    scenario_xml = (SIPP_DIR / "transfer_accepted.xml").read_text()
    log_file = tmp_path / "refer.log"

    async def scenario() -> list[TransferResult]:
        async with running_phone() as h:
            job = run_sipp(scenario_xml, h.target, tmp_path,
                           extra=["-trace_logs", "-log_file", str(log_file)])
            probe, _ = await h.answered_leg()
            await probe.leg.transfer(TRANSFER_TARGET)
            results: list[TransferResult] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not (results and results[-1].final):
                assert loop.time() < deadline, results
                probe.events.clear()
                results.append(await probe.wait_for(TransferResult,
                                                    timeout_s=deadline - loop.time()))
            await h.hang_up(probe)  # the IVR's decision after a successful blind transfer
            await finished(job)
            return results

    results = asyncio.run(scenario())
    leg_id = results[0].leg_id
    assert results == [
        TransferResult(leg_id, accepted=True, final=False, status_code=100, reason="Accepted"),
        TransferResult(leg_id, accepted=True, final=False, status_code=100, reason="Trying"),
        TransferResult(leg_id, accepted=True, final=True, status_code=200, reason="OK"),
    ]
    assert refer_to_logged(tmp_path).strip("<>") == TRANSFER_TARGET


@pytest.mark.sip
@needs_sipp
@pytest.mark.parametrize("code,reason", [(403, "Forbidden"), (405, "Method Not Allowed"),
                                         (501, "Not Implemented")])
def test_refused_blind_transfer_is_one_final_result(code: int, reason: str,
                                                    tmp_path: Path) -> None:
    scenario_xml = (SIPP_DIR / "transfer_refused.xml").read_text()
    assert "SIP/2.0 403 Forbidden" in scenario_xml
    scenario_xml = scenario_xml.replace("SIP/2.0 403 Forbidden", f"SIP/2.0 {code} {reason}")
    log_file = tmp_path / "refer.log"

    async def scenario() -> list[TransferResult]:
        async with running_phone() as h:
            job = run_sipp(scenario_xml, h.target, tmp_path,
                           extra=["-trace_logs", "-log_file", str(log_file)])
            probe, _ = await h.answered_leg()
            await probe.leg.transfer(TRANSFER_TARGET)
            result = await probe.wait_for(TransferResult, timeout_s=10)
            await asyncio.sleep(0.5)  # nothing else follows a refusal
            assert probe.leg.ended is None  # the call is still up
            results = probe.of(TransferResult)
            assert results == [result]
            await h.hang_up(probe)
            await finished(job)
            return results

    results = asyncio.run(scenario())
    assert results == [TransferResult(results[0].leg_id, accepted=False, final=True,
                                      status_code=code, reason=reason)]
    assert refer_to_logged(tmp_path).strip("<>") == TRANSFER_TARGET
