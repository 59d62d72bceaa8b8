"""The agent leg's media layer against real SIP peers: outbound calls to a sipp UAS (an
agent's phone), hold detection, the bridge with per-direction levels, music on hold and
the two-channel recording.

A `media.phone.Phone` runs in-process (``tests/phone_harness.py``). sipp does the SIP of
each peer; where a test checks what a peer hears, the peer's SDP names an `RtpPeer` socket
of the test's own, which sends a tone and keeps what it receives.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from media import LegAnswered, LegFailed, LegHeld, LegHungUp, LegResumed, LegRinging, MediaReady
from media.bridge import Bridge
from media.stereo import TwoChannelRecording, part_paths
from tests import sipp
from tests.phone_harness import (
    LegProbe,
    PhoneHarness,
    band_power,
    read_wav,
    running_phone,
    tone,
    wav_is_closed,
    write_wav,
)
from tests.rtp_peer import RtpPeer, received_pcm, stream_pcm

SIPP_DIR = Path(__file__).parent / "sipp"
CALLER_HZ = 440.0
AGENT_HZ = 1000.0
MOH_HZ = 700.0
AGENT_HEADERS = {
    "X-Queue": "support",
    "X-Wait-S": "42",
    "X-IVR-Account": "A-1001",
    "Call-Info": "<urn:uuid:5b1c7d2e-0c1a-4d9e-9d8e-5a0f3c2b1a00>;purpose=info",
}

needs_sipp = pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
pytestmark = needs_sipp

def runs_in_loop(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A test written as a coroutine, run in a fresh event loop."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


def dominates(pcm: npt.NDArray[np.int16], present_hz: float, absent_hz: float) -> bool:
    return band_power(pcm, 8000, present_hz) > 100 * band_power(pcm, 8000, absent_hz)


def loud(pcm: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


# -- 1. outbound legs -------------------------------------------------------------------------


@runs_in_loop
async def test_an_outbound_leg_rings_is_answered_carries_the_headers_and_audio(
        tmp_path: Path) -> None:
    agent = RtpPeer(ssrc=0xA6E47001)
    try:
        with sipp.uas("agent_answers.xml.in", tmp_path, agent.port) as (proc, uri):
            async with running_phone() as h:
                leg = await h.phone.place_call(uri, AGENT_HEADERS)
                probe = LegProbe(leg)
                ringing = await probe.wait_for(LegRinging)
                assert ringing.status_code == 180
                await probe.wait_for(LegAnswered)
                media = await probe.wait_for(MediaReady)
                assert media.codec == "PCMU"
                assert leg.sip_call_id  # known once the INVITE is sent
                # Our RTP reaches the agent's media address from the SDP answer.
                await asyncio.to_thread(agent.first_source)
                await leg.hangup()
                ended = await probe.wait_for(LegHungUp)
                assert ended.answered
                assert not probe.of(LegFailed)
            await sipp.uas_done(proc, tmp_path)  # sipp checked the four headers (check_it)
    finally:
        agent.close()


@runs_in_loop
async def test_an_outbound_leg_refused_486_fails_with_that_status(tmp_path: Path) -> None:
    with sipp.uas("agent_busy.xml", tmp_path) as (proc, uri):
        async with running_phone() as h:
            probe = LegProbe(await h.phone.place_call(uri, {"X-Queue": "sales"}))
            failed = await probe.wait_for(LegFailed)
            assert (failed.status_code, failed.reason) == (486, "Busy Here")
            ended = await probe.wait_for(LegHungUp)
            assert not ended.answered
            assert not probe.of(LegAnswered)
        await sipp.uas_done(proc, tmp_path)


@runs_in_loop
async def test_an_unanswered_outbound_leg_is_cancelled_by_its_caller(tmp_path: Path) -> None:
    with sipp.uas("agent_never_answers.xml", tmp_path) as (proc, uri):
        async with running_phone() as h:
            probe = LegProbe(await h.phone.place_call(uri, {}))
            await probe.wait_for(LegRinging)
            await probe.leg.cancel()  # the ring timeout, as the ACD's session would
            failed = await probe.wait_for(LegFailed)
            assert failed.status_code == 487
            await probe.wait_for(LegHungUp)
        await sipp.uas_done(proc, tmp_path)  # sipp saw the CANCEL


@runs_in_loop
async def test_an_outbound_proxy_gets_the_invite_for_any_target(tmp_path: Path) -> None:
    with sipp.uas("agent_busy.xml", tmp_path) as (proc, uri):
        proxy = uri.removeprefix("sip:agent@")
        async with running_phone(outbound_proxy=proxy) as h:
            # No such host: only the proxy (sipp here, Kamailio in the pool) can answer.
            probe = LegProbe(await h.phone.place_call("sip:agent7@agents.example.invalid", {}))
            failed = await probe.wait_for(LegFailed)
            assert failed.status_code == 486
        await sipp.uas_done(proc, tmp_path)


@pytest.mark.parametrize(("headers", "problem"), [
    ({"X Queue": "a"}, "not a SIP token"),
    ({"X-Queue": "a\r\nBYE sip:x SIP/2.0"}, "must be one line"),
    ({"Call-ID": "x"}, "written by PJSIP"),
])
@runs_in_loop
async def test_place_call_refuses_bad_headers_before_sending_anything(
        headers: dict[str, str], problem: str) -> None:
    async with running_phone() as h:
        with pytest.raises(ValueError, match=problem):
            await h.phone.place_call("sip:agent@127.0.0.1:5999", headers)
        with pytest.raises(ValueError, match="sip: or sips: URI"):
            await h.phone.place_call("agent@127.0.0.1", {})
        assert h.phone.active_legs == 0


# -- 2. hold detection ------------------------------------------------------------------------


@runs_in_loop
async def test_a_reinvite_sendonly_is_a_hold_and_sendrecv_resumes(tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0x401D0001)
    try:
        scenario = (sipp.Caller("holds_and_resumes", media_port=peer.port).pause(500)
                    .reinvite(peer.port, "sendonly").pause(500)
                    .reinvite(peer.port, "sendrecv").pause(500)
                    .reinvite(peer.port, "inactive").pause(500)
                    .reinvite(peer.port, "sendrecv").pause(300).caller_hangs_up())
        async with running_phone() as h:
            job = asyncio.ensure_future(asyncio.to_thread(
                sipp.run, scenario, h.target, tmp_path, timeout_s=30))
            probe, _ = await h.answered_leg()
            await probe.wait_for(LegHungUp, 20)
            kinds = [type(e) for e in probe.events if isinstance(e, (LegHeld, LegResumed))]
            assert kinds == [LegHeld, LegResumed, LegHeld, LegResumed]
            result = await asyncio.wait_for(job, 30)
            assert result.ok, result.output + result.errors
    finally:
        peer.close()


@runs_in_loop
async def test_an_agent_holding_from_its_phone_is_reported_on_the_outbound_leg(
        tmp_path: Path) -> None:
    with sipp.uas("agent_holds.xml", tmp_path) as (proc, uri):
        async with running_phone() as h:
            probe = LegProbe(await h.phone.place_call(uri, {}))
            await probe.wait_for(LegAnswered)
            while len([e for e in probe.events if isinstance(e, (LegHeld, LegResumed))]) < 4:
                probe.events.append(await asyncio.wait_for(probe.leg.next_event(), 15))
            kinds = [type(e) for e in probe.events if isinstance(e, (LegHeld, LegResumed))]
            assert kinds == [LegHeld, LegResumed, LegHeld, LegResumed]
            await probe.leg.hangup()
            await probe.wait_for(LegHungUp)
        await sipp.uas_done(proc, tmp_path)


# -- 3. the bridge ----------------------------------------------------------------------------


@asynccontextmanager
async def caller_and_agent(h: PhoneHarness, tmp_path: Path, caller: RtpPeer, agent: RtpPeer,
                           caller_talks_ms: int = 30000
                           ) -> AsyncIterator[tuple[LegProbe, LegProbe]]:
    """An inbound caller (sipp, media on ``caller``) and an outbound agent leg (sipp UAS,
    media on ``agent``), both with audio up; the caller's sipp hangs up (BYE) after
    ``caller_talks_ms``."""
    scenario = sipp.Caller("bridged_caller", media_port=caller.port).pause(caller_talks_ms) \
        .caller_hangs_up()
    job = asyncio.ensure_future(asyncio.to_thread(
        sipp.run, scenario, h.target, tmp_path, timeout_s=50))
    with sipp.uas("agent_answers.xml.in", tmp_path, agent.port) as (proc, uri):
        c, _ = await h.answered_leg()
        a = LegProbe(await h.phone.place_call(uri, AGENT_HEADERS))
        await a.wait_for(MediaReady)
        stream_pcm(caller, await asyncio.to_thread(caller.first_source), tone(CALLER_HZ, 1.0))
        stream_pcm(agent, await asyncio.to_thread(agent.first_source), tone(AGENT_HZ, 1.0))
        try:
            yield c, a
        finally:
            for p in (a, c):
                if p.leg.ended is None:
                    await p.leg.hangup()
            job.cancel()


async def heard(peer: RtpPeer, seconds: float) -> npt.NDArray[np.int16]:
    since = time.monotonic()
    await asyncio.sleep(seconds)
    return received_pcm(peer, since)


@runs_in_loop
async def test_a_bridge_carries_each_side_to_the_other_and_a_level_0_direction_is_silent(
        tmp_path: Path) -> None:
    caller, agent = RtpPeer(ssrc=0xCA11E401), RtpPeer(ssrc=0xA6E47002)
    try:
        async with running_phone() as h, caller_and_agent(h, tmp_path, caller, agent) as (c, a):
            bridge = Bridge(h.phone)
            await bridge.connect(c.leg, a.leg)
            at_agent, at_caller = await asyncio.gather(heard(agent, 1.5), heard(caller, 1.5))
            assert dominates(at_agent, CALLER_HZ, AGENT_HZ), "the agent does not hear the caller"
            assert dominates(at_caller, AGENT_HZ, CALLER_HZ), "the caller does not hear the agent"
            # Caller -> agent off: the agent hears silence, the caller still hears the agent.
            await bridge.set_level(c.leg, a.leg, 0)
            await asyncio.sleep(0.2)
            at_agent, at_caller = await asyncio.gather(heard(agent, 1.0), heard(caller, 1.0))
            assert loud(at_agent) < 50, f"the muted direction carried audio ({loud(at_agent)})"
            assert dominates(at_caller, AGENT_HZ, CALLER_HZ)
            assert bridge.level(c.leg, a.leg) == 0 and bridge.level(a.leg, c.leg) == 1.0
            # Half level: the agent hears the caller again, about 6 dB lower than at 1.0.
            await bridge.set_level(c.leg, a.leg, 0.5)
            await asyncio.sleep(0.2)
            half = await heard(agent, 1.0)
            assert dominates(half, CALLER_HZ, AGENT_HZ)
            await bridge.set_level(c.leg, a.leg, 1.0)
            await asyncio.sleep(0.2)
            full = await heard(agent, 1.0)
            assert 1.4 < loud(full) / loud(half) < 2.8
    finally:
        caller.close()
        agent.close()


@runs_in_loop
async def test_when_one_bridged_leg_ends_the_other_stays_up_and_can_hear_music(
        tmp_path: Path) -> None:
    caller, agent = RtpPeer(ssrc=0xCA11E402), RtpPeer(ssrc=0xA6E47003)
    moh = write_wav(tmp_path / "moh.wav", tone(MOH_HZ, 0.5))
    try:
        async with running_phone() as h, caller_and_agent(h, tmp_path, caller, agent) as (c, a):
            bridge = Bridge(h.phone)
            await bridge.connect(c.leg, a.leg)
            await a.leg.hangup()
            await a.wait_for(LegHungUp)
            assert c.leg.ended is None
            await c.leg.start_moh(moh)
            await asyncio.sleep(0.2)
            assert dominates(await heard(caller, 1.0), MOH_HZ, AGENT_HZ)
            await bridge.close()
    finally:
        caller.close()
        agent.close()


# -- 4. music on hold -------------------------------------------------------------------------


@runs_in_loop
async def test_music_on_hold_loops_past_the_end_of_its_file_until_stopped(
        tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0x3040001)
    moh = write_wav(tmp_path / "moh.wav", tone(MOH_HZ, 0.4))  # shorter than the listening
    try:
        scenario = sipp.Caller("hears_moh", media_port=peer.port).pause(30000).caller_hangs_up()
        async with running_phone() as h:
            job = asyncio.ensure_future(asyncio.to_thread(
                sipp.run, scenario, h.target, tmp_path, timeout_s=50))
            probe, _ = await h.answered_leg()
            await probe.leg.start_moh(moh)
            await asyncio.to_thread(peer.first_source)  # (PJMEDIA sends once a port plays)
            await asyncio.sleep(0.2)
            music = await heard(peer, 2.0)  # five times the file
            # Every 400 ms stretch holds the tone: the file started over each time.
            for n in range(music.size // 3200):
                part = music[n * 3200:(n + 1) * 3200]
                assert band_power(part, 8000, MOH_HZ) > 100 * band_power(part, 8000, 1500), n
            assert music.size >= 4 * 3200
            await probe.leg.stop_moh()
            await asyncio.sleep(0.2)
            assert loud(await heard(peer, 0.6)) < 50
            await probe.leg.hangup()
            await probe.wait_for(LegHungUp)
            job.cancel()
    finally:
        peer.close()


# -- 5. two-channel recording -----------------------------------------------------------------


@runs_in_loop
async def test_a_two_channel_recording_holds_the_caller_left_and_the_agent_right_even_when_the_caller_hangs_up(  # noqa: E501
        tmp_path: Path) -> None:
    caller, agent = RtpPeer(ssrc=0xCA11E403), RtpPeer(ssrc=0xA6E47004)
    path = tmp_path / "segment.wav"
    try:
        async with running_phone() as h, caller_and_agent(
                h, tmp_path, caller, agent, caller_talks_ms=3500) as (c, a):
            bridge = Bridge(h.phone)
            await bridge.connect(c.leg, a.leg)
            recording = TwoChannelRecording(h.phone, c.leg, a.leg, path)
            await recording.start()
            await c.wait_for(LegHungUp, 15)  # the caller's BYE, mid-recording
            await asyncio.sleep(0.5)  # the agent side goes on a little: its channel is longer
            duration_s = await recording.stop()
            await bridge.close()
    finally:
        caller.close()
        agent.close()
    assert wav_is_closed(path)
    assert not any(p.exists() for p in part_paths(path))
    params, pcm = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert duration_s == pytest.approx(params.nframes / 8000)
    assert duration_s > 1.0
    left, right = pcm[0::2], pcm[1::2]
    talk = slice(1600, 8000)  # 0.2 s to 1.0 s: both legs up and talking
    assert dominates(left[talk], CALLER_HZ, AGENT_HZ), "the left channel is not the caller"
    assert dominates(right[talk], AGENT_HZ, CALLER_HZ), "the right channel is not the agent"
