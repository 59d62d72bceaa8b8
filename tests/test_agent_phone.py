"""tests/agent_phone.py proven against the front's registrar: a baresip agent registers as
sip:ID@domain through Kamailio with digest; a worker-side PJSIP phone (media.phone, from an
address in the dispatcher set, Kamailio as its outbound proxy) calls it; tones pass both
ways; the agent's hold is a re-INVITE with sendonly; either side hangs up; ring no answer and
busy are what the worker sees."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from media import LegAnswered, LegFailed, LegHeld, LegHungUp, LegResumed, LegRinging, MediaReady
from tests.agent_phone import AgentPhone, baresip_agent
from tests.phone_harness import LegProbe, running_phone
from tests.test_front_agents import PASSWORD, AgentRig, agent_rig, needs_baresip  # noqa: F401
from tests.test_kamailio import needs_peers, wait_until
from tests.tones import describe, measure, write_tone_wav

WORKER_HZ = 1000.0  # what the worker side (the caller, in the stack) sends
AGENT_HZ = 1500.0  # what the agent's phone sends
HEADERS = {"X-Queue": "support", "X-Wait-S": "12"}

pytestmark = [pytest.mark.sip, *needs_peers, needs_baresip]


def runs_in_loop(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


def _worker(rig: AgentRig) -> Any:
    """A PJSIP phone at the rig's worker address, sending through the front."""
    return running_phone(sip_port=rig.worker_port,
                         outbound_proxy=f"127.0.0.1:{rig.front.config.port}")


def _ready(rig: AgentRig, phone: AgentPhone) -> None:
    phone.wait_registered()
    wait_until(lambda: rig.registered(phone.agent_id), 10, "the agent in the location table")


@runs_in_loop
async def test_a_worker_call_reaches_the_agent_with_its_headers_and_tones_pass_both_ways(
        agent_rig: AgentRig, tmp_path: Path) -> None:  # noqa: F811
    agent_tone = write_tone_wav(tmp_path / "agent.wav", AGENT_HZ, 40)
    worker_tone = write_tone_wav(tmp_path / "worker.wav", WORKER_HZ, 40)
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD,
                       play=agent_tone) as phone:
        _ready(agent_rig, phone)
        async with _worker(agent_rig) as w:
            probe = LegProbe(await w.phone.place_call("sip:1001@127.0.0.1", HEADERS))
            await probe.wait_for(LegAnswered, 15)
            await probe.wait_for(MediaReady)
            await probe.leg.play([worker_tone])
            await probe.leg.start_recording(tmp_path / "worker-heard.wav")
            await asyncio.sleep(4)  # audio to measure, not a bound on anything
            await probe.leg.stop_recording()
            await probe.leg.hangup()  # the worker hangs up: BYE through the front
            await probe.wait_for(LegHungUp)
        phone.wait_ended()
        (offer,) = phone.offered()
        assert offer.header("X-Queue") == "support" and offer.header("X-Wait-S") == "12"
        assert offer.start_line.startswith("INVITE sip:1001")
        assert phone.answered() == 1
    worker_heard = measure(tmp_path / "worker-heard.wav", (WORKER_HZ, AGENT_HZ), skip_s=0.5)
    assert worker_heard[0].holds(AGENT_HZ, absent_hz=WORKER_HZ), describe(worker_heard)
    (recording,) = phone.recordings()
    agent_heard = measure(recording, (WORKER_HZ, AGENT_HZ), skip_s=0.5)
    assert agent_heard[0].holds(WORKER_HZ, absent_hz=AGENT_HZ), describe(agent_heard)


@runs_in_loop
async def test_the_agent_holds_with_a_sendonly_reinvite_resumes_and_hangs_up(
        agent_rig: AgentRig, tmp_path: Path) -> None:  # noqa: F811
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD) as phone:
        _ready(agent_rig, phone)
        async with _worker(agent_rig) as w:
            probe = LegProbe(await w.phone.place_call("sip:1001@127.0.0.1", HEADERS))
            await probe.wait_for(MediaReady, 15)
            phone.hold()
            await probe.wait_for(LegHeld)
            phone.resume()
            await probe.wait_for(LegResumed)
            reinvites = phone.wait_sent("INVITE ", 2)
            assert [m.sdp_direction for m in reinvites] == ["sendonly", "sendrecv"], reinvites
            phone.hangup()  # the agent hangs up: its BYE reaches the worker
            ended = await probe.wait_for(LegHungUp)
            assert ended.answered


@runs_in_loop
async def test_an_agent_answering_after_a_delay_rings_first(
        agent_rig: AgentRig, tmp_path: Path) -> None:  # noqa: F811
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD,
                       answer_after_s=1.5) as phone:
        _ready(agent_rig, phone)
        async with _worker(agent_rig) as w:
            probe = LegProbe(await w.phone.place_call("sip:1001@127.0.0.1", HEADERS))
            await probe.wait_for(LegAnswered, 15)
            calls = [type(e) for e in probe.events if isinstance(e, LegRinging | LegAnswered)]
            assert calls == [LegRinging, LegAnswered]
            await probe.leg.hangup()
            await probe.wait_for(LegHungUp)
        assert phone.count("Incoming call") == 1 and phone.answered() == 1


@runs_in_loop
async def test_an_agent_that_never_answers_rings_until_the_worker_cancels(
        agent_rig: AgentRig, tmp_path: Path) -> None:  # noqa: F811
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD,
                       answer="never") as phone:
        _ready(agent_rig, phone)
        async with _worker(agent_rig) as w:
            probe = LegProbe(await w.phone.place_call("sip:1001@127.0.0.1", HEADERS))
            await probe.wait_for(LegRinging, 15)
            await asyncio.sleep(2)  # it keeps ringing (the ring timeout is the worker's)
            assert not probe.of(LegAnswered)
            await probe.leg.cancel()
            failed = await probe.wait_for(LegFailed)
            assert failed.status_code == 487
        phone.wait_ended()
        assert len(phone.offered()) == 1 and phone.answered() == 0


@runs_in_loop
async def test_a_busy_agent_refuses_with_486(
        agent_rig: AgentRig, tmp_path: Path) -> None:  # noqa: F811
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD,
                       answer="busy") as phone:
        _ready(agent_rig, phone)
        async with _worker(agent_rig) as w:
            probe = LegProbe(await w.phone.place_call("sip:1001@127.0.0.1", HEADERS))
            failed = await probe.wait_for(LegFailed, 15)
            assert failed.status_code == 486
            assert not probe.of(LegAnswered)
        assert phone.answered() == 0 and len(phone.sent("SIP/2.0 486")) == 1


def test_bad_answer_settings_are_refused_before_baresip_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give one of auto, never, busy"):
        with baresip_agent(tmp_path, 5060, "1001", PASSWORD, answer="later"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="give 0 or more seconds"):
        with baresip_agent(tmp_path, 5060, "1001", PASSWORD, answer_after_s=-1):
            pass
    assert not list(tmp_path.iterdir())
