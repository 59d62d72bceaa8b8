"""tests/tone_caller.py: a caller that sends tone A is heard as tone A by a real PJSIP
phone, the caller that records hears the phone's tone B (and not its own), and it works
through the front into a worker as well."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from media import LegHungUp
from tests import sipp
from tests.phone_harness import running_phone
from tests.test_media_agent_leg import runs_in_loop
from tests.tone_caller import ToneCaller, pcap_tone_caller, write_tone_pcap
from tests.tones import describe, measure, rms_dbfs, tone_share, write_tone_wav

CALLER_HZ = 1000.0
PHONE_HZ = 1500.0

pytestmark = [pytest.mark.sip,
              pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")]


def test_a_tone_pcap_holds_one_pcmu_packet_per_20ms(tmp_path: Path) -> None:
    assert write_tone_pcap(tmp_path / "a.pcap", CALLER_HZ, 2.0) == 100
    scenario = pcap_tone_caller("tone", tmp_path / "a.pcap", 3000).render()
    assert f'play_pcap_audio="{tmp_path / "a.pcap"}"' in scenario
    assert "RTP/AVP 0\n" in scenario  # PCMU only, no telephone-event


def test_a_missing_pcap_or_no_talk_time_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such capture"):
        pcap_tone_caller("tone", tmp_path / "none.pcap", 3000)
    write_tone_pcap(tmp_path / "a.pcap", CALLER_HZ, 1.0)
    with pytest.raises(ValueError, match="above 0"):
        pcap_tone_caller("tone", tmp_path / "a.pcap", 0)


@runs_in_loop
async def test_sipp_playing_the_tone_pcap_is_heard_as_that_tone(tmp_path: Path) -> None:
    write_tone_pcap(tmp_path / "a.pcap", CALLER_HZ, 5.0)
    caller = pcap_tone_caller("pcap_tone", tmp_path / "a.pcap", 6000)
    async with running_phone() as h:
        job = asyncio.ensure_future(asyncio.to_thread(sipp.run, caller, h.target, tmp_path,
                                                      timeout_s=30))
        probe, _ = await h.answered_leg(15)
        await probe.leg.start_recording(tmp_path / "phone-heard.wav")
        result = await job  # the caller hung up after its talk time
        await probe.wait_for(LegHungUp)
        await probe.leg.stop_recording()  # waits until PJMEDIA closed the WAV
    assert result.ok, result.output + result.errors
    heard = measure(tmp_path / "phone-heard.wav", (CALLER_HZ, PHONE_HZ), skip_s=0.5)
    assert heard[0].seconds > 2 and heard[0].holds(CALLER_HZ, absent_hz=PHONE_HZ), \
        describe(heard)


@runs_in_loop
async def test_a_tone_caller_sends_its_tone_and_records_the_other_sides(
        tmp_path: Path) -> None:
    phone_tone = write_tone_wav(tmp_path / "phone.wav", PHONE_HZ, 30)
    async with running_phone() as h:
        caller = ToneCaller(h.target, tmp_path, CALLER_HZ, talk_ms=5000).start()
        probe, _ = await h.answered_leg(15)
        await probe.leg.play([phone_tone])
        await probe.leg.start_recording(tmp_path / "phone-heard.wav")
        result = await asyncio.to_thread(caller.wait)
        await probe.wait_for(LegHungUp)
        await probe.leg.stop_recording()
    assert result.ok, result.output + result.errors
    assert caller.sending_to is not None
    since = caller.first_heard_at() + 0.5
    at_caller = caller.heard(since)
    assert at_caller.size > 2 * 8000, f"the caller heard {at_caller.size / 8000:.1f} s"
    assert tone_share(at_caller, PHONE_HZ) > 0.5 > 100 * tone_share(at_caller, CALLER_HZ), (
        tone_share(at_caller, PHONE_HZ), tone_share(at_caller, CALLER_HZ))
    at_phone = measure(tmp_path / "phone-heard.wav", (CALLER_HZ, PHONE_HZ), skip_s=0.5)
    assert at_phone[0].holds(CALLER_HZ, absent_hz=PHONE_HZ), describe(at_phone)


def test_a_tone_caller_through_the_front_hears_the_ivr_and_hangs_up(tmp_path: Path) -> None:
    from tests.conftest import ended_call, start_stack

    stack = start_stack(tmp_path, workers=1)
    try:
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ,
                            talk_ms=4000).start()
        result = caller.wait()
        assert result.ok, result.output + result.errors
        at_caller = caller.heard(caller.first_heard_at())
        assert at_caller.size > 2 * 8000 and rms_dbfs(at_caller) > -40, rms_dbfs(at_caller)
        row, _ = ended_call(stack.db)
        assert row["hangup_by"] == "caller", dict(row)
    finally:
        assert stack.stop() == 0
