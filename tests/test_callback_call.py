"""The worker's side of a queued callback (ivr/callback_call.py) with fake legs, a fake
controller link and a fake phone (tests/acd_fakes.py): the agent rung, the customer dialled
once the controller says so, the two bridged and recorded; a customer not reached releases
the agent at once; either hanging up ends both; and the controller's room picks a worker
with a free slot and routes the worker's reports to the ACD."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ivr import callback_messages as cm
from ivr import messages as m
from ivr.callback_call import CallbackCall, CbState, customer_outcome
from tests.acd_fakes import FakeLink, FakeMedia

OFFER = cm.CallbackOffer("cb-c1", "cb-c1#5", "1001", "sip:1001@cc.test", "support",
                         "5550001", 42.0, 15.0, True, {"account": "7"})


async def _settle() -> None:
    for _ in range(40):
        await asyncio.sleep(0)


class FakeRecorder:
    """The worker's call records: what was written, by call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, str, dict[str, object]]] = []

    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, object]) -> None:
        self.events.append((call_id, at, kind, data))


async def _started(tmp: Path, free_legs: int = 2, recorder: FakeRecorder | None = None
                   ) -> tuple[CallbackCall, FakeLink, FakeMedia, asyncio.Task[None]]:
    link, media = FakeLink(), FakeMedia(free_legs=free_legs)
    call = CallbackCall(OFFER, link, media, tmp, "http://127.0.0.1:8080/api/v1/calls",
                        recorder=recorder, wall=lambda: 1000.0)
    task = asyncio.ensure_future(call.run())
    await _settle()
    return call, link, media, task


def test_agent_rung_customer_dialled_bridged_recorded_then_ended(tmp_path: Path) -> None:
    async def go() -> None:
        recorder = FakeRecorder()
        call, link, media, task = await _started(tmp_path, recorder=recorder)
        uri, headers = media.placed[0]
        assert uri == "sip:1001@cc.test"
        assert headers["X-Callback"] == "5550001" and headers["X-Queue"] == "support"
        agent = media.agents[0]
        agent.rings()
        agent.picks_up()
        await _settle()
        assert [type(x).__name__ for x in link.sent] == ["OfferRinging", "OfferAnswered"]
        assert not media.placed[1:]  # the customer only once the controller says so
        call.deliver(cm.DialCustomer("cb-c1", "cb-c1#5", "sip:5550001@gw.test", 20.0))
        await _settle()
        assert media.placed[1][0] == "sip:5550001@gw.test"
        customer = media.agents[1]
        customer.rings()
        customer.picks_up()
        await _settle()
        assert isinstance(link.sent[-1], cm.CustomerAnswered)
        call.deliver(m.Connect("cb-c1", "cb-c1#5", "1001"))
        await _settle()
        assert media.log == [f"bridge {customer.leg_id}-{agent.leg_id}"]  # customer left
        assert call.state is CbState.BRIDGED and media.recordings
        customer.hangs_up()
        await asyncio.wait_for(task, 5)
        assert isinstance(link.sent[-1], m.CallerGone)
        assert agent.log[-1] == "bye" and media.recordings[0].stopped
        # no calls row of its own: the recording is linked to the call it came from
        assert recorder.events == [("c1", 1000.0, "recording", {
            "path": str(tmp_path / "cb-c1-1001.wav"), "agent_id": "1001", "queue": "support",
            "duration_s": 12.5, "channels": 2, "callback_id": "cb-c1"})]

    asyncio.run(go())


def test_a_busy_customer_releases_the_agent_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        call, link, media, task = await _started(tmp_path)
        media.agents[0].picks_up()
        await _settle()
        call.deliver(cm.DialCustomer("cb-c1", "cb-c1#5", "sip:5550001@gw.test", 20.0))
        await _settle()
        media.agents[1].refuses(486)
        await asyncio.wait_for(task, 5)
        assert link.sent[-1] == cm.CustomerNotReached("cb-c1", "busy", 486)
        assert media.agents[0].log[-1] == "bye"

    asyncio.run(go())


def test_no_answer_within_no_answer_s_is_no_answer(tmp_path: Path) -> None:
    async def go() -> None:
        call, link, media, task = await _started(tmp_path)
        media.agents[0].picks_up()
        await _settle()
        call.deliver(cm.DialCustomer("cb-c1", "cb-c1#5", "sip:5550001@gw.test", 0.05))
        await _settle()
        media.agents[1].rings()  # rings on, unanswered
        await asyncio.wait_for(task, 5)
        assert link.sent[-1] == cm.CustomerNotReached("cb-c1", "no_answer", 0)
        assert media.agents[1].log[-1] == "cancel" and media.agents[0].log[-1] == "bye"

    asyncio.run(go())


def test_an_agent_who_does_not_answer_or_hangs_up_while_dialling(tmp_path: Path) -> None:
    async def go() -> None:
        _, link, media, task = await _started(tmp_path)
        media.agents[0].refuses(480, "Temporarily Unavailable")
        await asyncio.wait_for(task, 5)
        assert link.sent[-1] == m.OfferFailed("cb-c1", "cb-c1#5", "no_answer", 480)
        call, link, media, task = await _started(tmp_path)
        media.agents[0].picks_up()
        await _settle()
        call.deliver(cm.DialCustomer("cb-c1", "cb-c1#5", "sip:5550001@gw.test", 20.0))
        await _settle()
        media.agents[0].hangs_up()
        await asyncio.wait_for(task, 5)
        assert isinstance(link.sent[-1], m.AgentGone)
        assert media.agents[1].log[-1] == "cancel"  # the customer's ring stops too
        _, link, media, task = await _started(tmp_path, free_legs=0)
        await asyncio.wait_for(task, 5)
        assert link.sent == [m.OfferFailed("cb-c1", "cb-c1#5", "error")]  # no free slot

    asyncio.run(go())


async def _dialled(tmp: Path, voicemail_answer_s: float, greeting_s: float,
                   clock: list[float]) -> tuple[CallbackCall, FakeLink, FakeMedia,
                                                asyncio.Task[None]]:
    link, media = FakeLink(), FakeMedia()
    call = CallbackCall(OFFER, link, media, tmp, now=lambda: clock[0])
    task = asyncio.ensure_future(call.run())
    await _settle()
    media.agents[0].picks_up()
    await _settle()
    call.deliver(cm.DialCustomer("cb-c1", "cb-c1#5", "sip:5550001@gw.test", 20.0,
                                 voicemail_answer_s, greeting_s))
    await _settle()
    return call, link, media, task


def test_a_customer_answering_sooner_than_a_person_would_is_voicemail(tmp_path: Path) -> None:
    async def go(answer_after_s: float) -> tuple[object, list[str]]:
        clock = [100.0]
        call, link, media, task = await _dialled(tmp_path, 1.0, 0.0, clock)
        customer = media.agents[1]
        clock[0] = 105.0  # dialled 5 s ago; ringing starts now
        customer.rings()
        await _settle()
        clock[0] += answer_after_s
        customer.picks_up()
        await _settle()
        sent = link.sent[-1]
        call.deliver(m.CancelOffer("cb-c1", "cb-c1#5", "test over"))
        await asyncio.wait_for(task, 5)
        return sent, media.agents[0].log

    sent, agent_log = asyncio.run(go(0.4))
    assert sent == cm.CustomerNotReached("cb-c1", "voicemail", 0)  # retried as no answer
    assert agent_log[-1] == "bye"  # the agent is released at once
    sent, _ = asyncio.run(go(2.5))
    assert isinstance(sent, cm.CustomerAnswered)


def test_a_greeting_in_the_first_seconds_is_voicemail_a_hello_is_a_person(
        tmp_path: Path) -> None:
    import numpy as np

    rate = 8000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(rate * 3) / rate)).astype(
        np.int16)
    silence = np.zeros(rate, dtype=np.int16)

    async def go(audio: np.ndarray) -> tuple[list[object], list[str], CbState]:
        clock = [100.0]
        call, link, media, task = await _dialled(tmp_path, 0.0, 3.0, clock)
        customer = media.agents[1]
        customer.rings()
        customer.picks_up()
        await _settle()
        assert call.state is CbState.SCREENING and customer.log[-1] == "listen"
        assert not isinstance(link.sent[-1], cm.CustomerAnswered)  # not before the verdict
        customer.listener.feed(audio, 0.0)
        await _settle()
        sent, state = list(link.sent), call.state
        call.deliver(m.CancelOffer("cb-c1", "cb-c1#5", "test over"))
        await asyncio.wait_for(task, 5)
        return sent, customer.log, state

    sent, log, _ = asyncio.run(go(tone))  # 3 s of continuous speech: an answering machine
    assert sent[-1] == cm.CustomerNotReached("cb-c1", "voicemail", 0)
    assert "unlisten" in log
    sent, log, state = asyncio.run(go(np.concatenate([tone[:rate // 2], silence])))
    assert isinstance(sent[-1], cm.CustomerAnswered) and state is CbState.CUSTOMER_UP
    assert log[-2:] == ["unlisten", "bye"]  # stopped listening before the bridge


def test_a_silent_line_is_a_person_when_the_greeting_window_is_over(tmp_path: Path) -> None:
    async def go() -> list[object]:
        call, link, media, task = await _dialled(tmp_path, 0.0, 0.05, [0.0])
        media.agents[1].picks_up()
        for _ in range(50):  # the window's timer (0.05 s) fires; no audio came
            await asyncio.sleep(0.02)
            if call.state is not CbState.SCREENING:
                break
        sent = list(link.sent)
        call.deliver(m.CancelOffer("cb-c1", "cb-c1#5", "test over"))
        await asyncio.wait_for(task, 5)
        return sent

    assert isinstance(asyncio.run(go())[-1], cm.CustomerAnswered)


def test_customer_outcomes_by_sip_code() -> None:
    assert [customer_outcome(c) for c in (486, 603, 408, 480, 487, 0, 404, 500)] == [
        "busy", "busy", "no_answer", "no_answer", "no_answer", "no_answer", "failed",
        "failed"]


class _Writer:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def messages(self) -> list[m.Message]:
        import json

        return [m.from_wire(json.loads(x)) for x in self.lines]


class _Slot:
    def __init__(self, name: str) -> None:
        self.name = name
        self.writer = _Writer()


ROOM_ACD = """
queues:
  support:
    announce_every_s: 0
    wrapup_s: 0
    callback: {retries: 1, retry_s: 60, dial_uri: "sip:{number}@gw.test:5070"}
agents:
  "1001": {name: Ann, queues: {support: 5}}
"""


def test_the_controller_places_the_callback_on_a_free_worker_and_follows_it(
        tmp_path: Path) -> None:
    import json

    from ivr.acd import AgentState
    from ivr.config import load_settings
    from ivr.controller_acd import ControllerAcd
    from ivr.store import CallStore

    acd_file = tmp_path / "acd.yaml"
    acd_file.write_text(ROOM_ACD, encoding="utf-8")
    settings = load_settings(None, env={"IVR_PATHS_ACD": str(acd_file),
                                        "IVR_PATHS_VAR_DIR": str(tmp_path / "var")})
    store = CallStore(tmp_path / "s.sqlite3")
    room = ControllerAcd(settings, store, store.append_queue_log)
    caller_worker, free_worker = _Slot("w1"), _Slot("w2")
    room.enable_callbacks(lambda: free_worker)  # type: ignore[arg-type, return-value]
    room.call_arrived("c1", caller_worker)  # type: ignore[arg-type]

    def tell(slot: _Slot, msg: m.Message) -> None:
        room.on_message(slot, json.loads(m.to_wire(msg)))  # type: ignore[arg-type]

    tell(caller_worker, m.Join("c1", "support", caller="5550001", data={"account": "7"}))
    tell(caller_worker, cm.CallbackRequest("c1", "5550001"))
    assert isinstance(caller_worker.writer.messages()[-1], cm.CallbackTaken)
    room.service.request_state("1001", "ready")
    (offer,) = free_worker.writer.messages()
    assert isinstance(offer, cm.CallbackOffer)
    assert (offer.call_id, offer.number, offer.data) == ("cb-c1", "5550001", {"account": "7"})
    tell(free_worker, m.OfferAnswered("cb-c1", offer.offer_id))
    dial = free_worker.writer.messages()[-1]
    assert isinstance(dial, cm.DialCustomer) and dial.uri == "sip:5550001@gw.test:5070"
    assert (dial.voicemail_answer_s, dial.voicemail_greeting_s) == (1.0, 0.0)  # defaults
    tell(free_worker, cm.CustomerNotReached("cb-c1", "no_answer"))
    assert room.service.acd.agents["1001"].state is AgentState.READY  # released
    assert store.open_callbacks()[0].attempts == 1  # waits for its retry

    # the retry (its wait cut short here: the room's clock is the wall clock): answered,
    # bridged, and the agent hangs up
    room.service.acd.entries["cb-c1"].not_before = None
    room.service.request_state("1001", "not_ready", "break")
    room.service.request_state("1001", "ready")
    offer2 = free_worker.writer.messages()[-1]
    assert isinstance(offer2, cm.CallbackOffer) and offer2.offer_id != offer.offer_id
    tell(free_worker, m.OfferAnswered("cb-c1", offer2.offer_id))
    tell(free_worker, cm.CustomerAnswered("cb-c1"))
    assert isinstance(free_worker.writer.messages()[-1], m.Connect)
    tell(free_worker, m.AgentGone("cb-c1"))
    events = [r.event.value for r in store.queue_log(call_id="cb-c1") if not r.new_state]
    assert events[-1] == "CALLBACKCOMPLETE" and "CALLBACKCONNECT" in events
    assert store.callback("cb-c1").outcome == "completed_agent"  # type: ignore[union-attr]
    room.close()
    store.close()
