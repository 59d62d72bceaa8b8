"""The ACD part of a call's session (ivr/queue_call.py inside ivr/session.py), with fake
legs, a fake controller link and a fake phone (tests/acd_fakes.py): what the controller is
told, what happens to the caller's and the agents' legs, what the call record keeps, for
the controller's messages and the legs' events in every state of the call."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from ivr import messages as m
from ivr.queue_call import ControllerLost, agent_headers, failure_reason, header_name
from media import DtmfMethod, DtmfReceived
from tests.acd_fakes import Driver, FakeLeg, FakeLink, FakeMedia
from tests.test_flow_nodes import make_flow

PIN = {"type": "collect", "prompts": ["enter_pin"], "var": "pin", "min_digits": 4,
       "max_digits": 4, "sensitive": True, "next": "acct"}
FLOW = make_flow({
    "ask": {**PIN, "on_failure": "failed"},
    "acct": {"type": "set", "vars": {"account": "A-1001"}, "next": "q"},
    "q": {"type": "queue", "queue": "support", "skills": ["en"], "priority": 3,
          "exit_keys": {"0": "voicemail"}, "after_agent": "survey",
          "on_unavailable": "no_agents"},
    "survey": {"type": "play", "prompts": ["survey_intro"], "next": "bye"},
})


def runs_in_loop(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


async def queued(tmp: Path, **kw: Any) -> Driver:
    """A caller who typed their PIN and waits in the support queue with music."""
    d = await Driver(FLOW, tmp, **kw).start()
    for digit in "9731":
        d.caller.send(DtmfReceived(1, digit, DtmfMethod.RFC4733))
    await d.settle()
    assert d.link.of(m.Join), "the flow did not reach the queue"
    await d.tell(m.Queued(d.call_id, "support", 2, 60))
    return d


async def bridged(tmp: Path, record: bool = False) -> tuple[Driver, FakeLeg]:
    d = await queued(tmp)
    agent = await d.agent(record=record)
    agent.rings()
    agent.picks_up()
    await d.settle()
    await d.tell(m.Connect(d.call_id, "o1", "1001"))
    return d, agent


# -- joining, waiting -------------------------------------------------------------------------


@runs_in_loop
async def test_join_gives_the_agent_the_menu_choices_taken_for_the_screen_pop(
        tmp_path: Path) -> None:
    flow = make_flow({
        "main": {"type": "menu", "prompts": ["main_menu"], "on_failure": "failed",
                 "choices": {"2": "q"}},
        "q": {"type": "queue", "queue": "support", "on_unavailable": "failed"}})
    d = await Driver(flow, tmp_path).start()
    d.caller.send(DtmfReceived(1, "2", DtmfMethod.RFC4733))
    await d.settle()
    [join] = d.link.of(m.Join)
    assert join.data["ivr_path"] == "main:2"


@runs_in_loop
async def test_join_names_the_queue_and_gives_the_agent_the_ivr_variables_masked(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    [join] = d.link.of(m.Join)
    assert (join.queue, join.priority, join.skills, join.caller) == ("support", 3, ("en",),
                                                                     "+15550100")
    assert join.data["pin"] == "XXXX"  # a sensitive collect's digits never leave masked
    assert join.data["account"] == "A-1001"
    assert join.data["caller_name"] == "Ada Caller" and join.data["language"] == "en-US"
    assert not {"call_id", "sip_call_id", "caller_uri"} & set(join.data)
    assert d.store.events("queue.joined") == [{"queue": "support", "priority": 3,
                                               "skills": ["en"]}]


@runs_in_loop
async def test_queued_plays_music_and_an_announcement_interrupts_it(tmp_path: Path) -> None:
    d = await queued(tmp_path)
    assert d.caller.log[-1] == "moh hold_music"
    await d.tell(m.Announce(d.call_id, "support", 3, 150))
    assert d.caller.log[-3:] == ["moh off",
                                 "play you_are_caller,digit_3,in_queue,est_wait,digit_3,minutes",
                                 "moh hold_music"]
    assert d.store.events("queue.announced")[0]["position"] == 3


@runs_in_loop
async def test_without_a_controller_link_a_queue_goes_on_at_on_unavailable(
        tmp_path: Path) -> None:
    link = FakeLink()
    link.lost = True
    d = await Driver(FLOW, tmp_path, link=link).start()
    for digit in "9731":
        d.caller.send(DtmfReceived(1, digit, DtmfMethod.RFC4733))
    await d.settle()
    assert not link.sent
    assert d.session.run.node_name == "no_agents"


# -- offering ---------------------------------------------------------------------------------


@runs_in_loop
async def test_an_offer_rings_the_agent_with_the_caller_data_and_the_caller_keeps_music(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    uri, headers = d.media.placed[0]
    assert uri == "sip:1001@cc.test"
    assert headers["X-Queue"] == "support" and headers["X-Wait-S"] == "42"
    assert headers["X-IVR-Account"] == "A-1001" and headers["X-IVR-Pin"] == "XXXX"
    assert headers["X-IVR-Caller-Name"] == "Ada Caller"
    assert headers["X-Call-Id"] == d.call_id
    assert headers["Call-Info"] == (f"<http://127.0.0.1:8080/api/v1/calls/{d.call_id}>"
                                    ";purpose=info")
    agent.rings()
    await d.settle()
    assert d.link.of(m.OfferRinging) == [m.OfferRinging(d.call_id, "o1")]
    agent.picks_up()
    await d.settle()
    assert d.link.of(m.OfferAnswered) == [m.OfferAnswered(d.call_id, "o1")]
    assert not d.media.log  # not bridged before Connect
    assert d.caller.music
    agent_steps = [k for k in d.store.kinds() if k.startswith("agent.")]
    assert agent_steps == ["agent.offered", "agent.ringing", "agent.answered"]


@pytest.mark.parametrize(("code", "reason"), [(486, "rejected"), (603, "rejected"),
                                              (408, "no_answer"), (480, "no_answer")])
@runs_in_loop
async def test_an_agent_phone_that_refuses_is_an_offer_failed(tmp_path: Path, code: int,
                                                             reason: str) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.rings()
    agent.refuses(code)
    await d.settle()
    assert d.link.of(m.OfferFailed) == [m.OfferFailed(d.call_id, "o1", reason, code)]
    assert d.caller.music
    await d.tell(m.Requeued(d.call_id, "support", 1))
    assert d.caller.music and d.session.run.state.value == "queued"


@runs_in_loop
async def test_an_offer_without_a_free_leg_fails_with_error(tmp_path: Path) -> None:
    d = await queued(tmp_path, media=FakeMedia(free_legs=0))
    await d.tell(m.Offer(d.call_id, "o1", "1001", "sip:1001@cc.test", "support", 3, 20))
    assert d.link.of(m.OfferFailed) == [m.OfferFailed(d.call_id, "o1", "error", 0)]
    assert d.store.events("agent.failed")[0]["reason"] == "error"


@runs_in_loop
async def test_cancel_offer_cancels_a_ringing_leg_without_reporting_a_failure(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.rings()
    await d.tell(m.CancelOffer(d.call_id, "o1", "no-answer"))
    assert agent.log == ["cancel"]
    assert not d.link.of(m.OfferFailed)
    assert d.store.events("agent.cancelled")[0]["reason"] == "no-answer"


@runs_in_loop
async def test_cancel_offer_answered_too_late_hangs_the_agent_leg_up(tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.picks_up()
    await d.settle()
    await d.tell(m.CancelOffer(d.call_id, "o1", "answered-too-late"))
    assert agent.log == ["bye"]
    assert d.caller.music and not d.media.log


@runs_in_loop
async def test_an_answer_crossing_our_cancel_gets_a_bye(tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.rings()
    await d.settle()
    agent.log.clear()
    # The CANCEL goes out; the agent's 200 was already on its way.
    d.session.deliver(m.CancelOffer(d.call_id, "o1", "answered-elsewhere"))
    agent.answered = True  # so our hang-up after the 200 is a BYE
    agent.picks_up()
    await d.settle()
    assert "bye" in agent.log
    assert not d.link.of(m.OfferAnswered)


@runs_in_loop
async def test_ring_all_rings_several_agents_and_the_others_are_cancelled(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    a1 = await d.agent("o1", agent_id="1001")
    a2 = await d.agent("o2", agent_id="1002")
    a1.rings()
    a2.rings()
    a2.picks_up()
    await d.settle()
    await d.tell(m.CancelOffer(d.call_id, "o1", "answered-elsewhere"))
    await d.tell(m.Connect(d.call_id, "o2", "1002"))
    assert a1.log == ["cancel"]
    assert d.media.log == [f"bridge 1-{a2.leg_id}"]


# -- talking ----------------------------------------------------------------------------------


@runs_in_loop
async def test_connect_bridges_stops_the_music_and_records_two_channels(tmp_path: Path) -> None:
    d, agent = await bridged(tmp_path, record=True)
    assert d.media.log == [f"bridge 1-{agent.leg_id}"]
    assert not d.caller.music
    [rec] = d.media.recordings
    assert rec.path == tmp_path / "2026-05-28" / f"{d.call_id}-agent1.wav"
    assert d.store.events("agent.connected") == [{"offer_id": "o1", "agent_id": "1001",
                                                  "queue": "support"}]


@runs_in_loop
async def test_connect_before_the_agent_audio_bridges_once_it_is_up(tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.picks_up(media=False)
    await d.settle()
    await d.tell(m.Connect(d.call_id, "o1", "1001"))
    assert not d.media.log
    agent.audio_up()
    await d.settle()
    assert d.media.log == [f"bridge 1-{agent.leg_id}"]


@runs_in_loop
async def test_agent_hangs_up_the_caller_goes_on_at_after_agent(tmp_path: Path) -> None:
    d, agent = await bridged(tmp_path, record=True)
    agent.hangs_up()
    await d.settle()
    assert d.link.of(m.AgentGone) == [m.AgentGone(d.call_id)]
    assert "play survey_intro" in d.caller.log
    assert d.media.recordings[0].stopped
    [rec] = d.store.events("recording")
    assert rec == {"path": str(d.media.recordings[0].path), "agent_id": "1001",
                   "queue": "support", "duration_s": 12.5, "channels": 2}
    assert d.store.events("agent.hangup")[0]["agent_id"] == "1001"
    await d.finish()  # survey played, then the flow's hang-up
    assert d.store.ended()["reason"] == "bye"  # type: ignore[index]
    assert not d.link.of(m.CallerGone)


@runs_in_loop
async def test_an_agent_who_hangs_up_as_connect_arrives_is_an_agent_gone(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.picks_up()
    await d.settle()
    d.session.deliver(m.Connect(d.call_id, "o1", "1001"))
    agent.hangs_up()  # its BYE lands behind the Connect: the bridge finds the leg gone
    await d.settle()
    assert d.link.of(m.AgentGone) == [m.AgentGone(d.call_id)]
    assert "play survey_intro" in d.caller.log


@runs_in_loop
async def test_agent_hold_gives_the_caller_music_and_resume_bridges_again(
        tmp_path: Path) -> None:
    d, agent = await bridged(tmp_path)
    agent.holds()
    await d.settle()
    assert d.caller.music and not d.media.bridged
    assert d.link.of(m.Held) == [m.Held(d.call_id)]
    agent.holds(False)
    await d.settle()
    assert not d.caller.music and d.media.bridged
    assert d.link.of(m.Resumed) == [m.Resumed(d.call_id)]
    assert d.store.kinds().count("agent.held") == 1


@runs_in_loop
async def test_an_offer_before_queued_still_gives_music_and_the_call_goes_on_after_the_agent(
        tmp_path: Path) -> None:
    d = await Driver(FLOW, tmp_path).start()
    for digit in "9731":
        d.caller.send(DtmfReceived(1, digit, DtmfMethod.RFC4733))
    await d.settle()
    agent = await d.agent()  # a free agent at once: no Queued first
    assert d.caller.music
    agent.picks_up()
    await d.settle()
    await d.tell(m.Connect(d.call_id, "o1", "1001"))
    assert d.media.bridged and not d.caller.music
    agent.hangs_up()
    await d.settle()
    assert "play survey_intro" in d.caller.log


@pytest.mark.parametrize("message", ["exit", "cancel"])
@runs_in_loop
async def test_a_talking_caller_is_not_cut_off_by_an_exit_or_a_cancel(
        tmp_path: Path, message: str) -> None:
    d, agent = await bridged(tmp_path)
    await d.tell(m.Exit(d.call_id, "support", "timeout") if message == "exit"
                 else m.CancelOffer(d.call_id, "o1", "agent-state"))
    assert agent.log == [] and d.media.bridged
    agent.hangs_up()
    await d.settle()
    assert "play survey_intro" in d.caller.log


# -- the caller leaves ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["waiting", "queued", "ringing", "answered", "bridged",
                                   "held"])
@runs_in_loop
async def test_the_caller_hanging_up_is_told_once_and_every_agent_leg_ends(
        tmp_path: Path, stage: str) -> None:
    d = await Driver(FLOW, tmp_path).start()
    for digit in "9731":
        d.caller.send(DtmfReceived(1, digit, DtmfMethod.RFC4733))
    await d.settle()
    agent = None
    if stage != "waiting":
        await d.tell(m.Queued(d.call_id, "support", 1, 0))
    if stage in ("ringing", "answered", "bridged", "held"):
        agent = await d.agent(record=True)
        agent.rings()
    if stage in ("answered", "bridged", "held"):
        agent.picks_up()  # type: ignore[union-attr]
        await d.settle()
    if stage in ("bridged", "held"):
        await d.tell(m.Connect(d.call_id, "o1", "1001"))
    if stage == "held":
        agent.holds()  # type: ignore[union-attr]
    await d.settle()
    d.caller.hangs_up()
    await d.finish()
    assert d.link.of(m.CallerGone) == [m.CallerGone(d.call_id)]
    assert d.store.ended()["reason"] == "caller_hangup"  # type: ignore[index]
    if agent is not None:
        assert agent.log[-1] == ("cancel" if stage == "ringing" else "bye")
        assert agent.ended is not None
    if stage in ("bridged", "held"):
        assert len(d.store.events("recording")) == 1


@runs_in_loop
async def test_an_exit_key_tells_the_acd_and_stops_a_ringing_agent(tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.rings()
    d.caller.send(DtmfReceived(1, "0", DtmfMethod.RFC4733))
    await d.settle()
    assert d.link.of(m.LeftWithKey) == [m.LeftWithKey(d.call_id, "0")]
    assert agent.log == ["cancel"]
    assert d.session.run.node_name == "voicemail"
    await d.finish()
    assert not d.link.of(m.CallerGone)  # it had left the ACD already


@pytest.mark.parametrize(("target", "node"), [("", "no_agents"), ("ask", "ask")])
@runs_in_loop
async def test_exit_sends_the_caller_on_and_a_late_offer_is_refused(
        tmp_path: Path, target: str, node: str) -> None:
    d = await queued(tmp_path)
    await d.tell(m.Exit(d.call_id, "support", "timeout", target))
    assert "moh off" in d.caller.log
    assert d.session.run.node_name == node
    if d.session.ended:
        return  # (an Offer for an ended call: the worker answers it, test_worker_acd)
    await d.tell(m.Offer(d.call_id, "o9", "1001", "sip:1001@cc.test", "support", 3, 20))
    assert d.link.of(m.OfferFailed) == [m.OfferFailed(d.call_id, "o9", "error", 0)]
    assert not d.media.placed


@runs_in_loop
async def test_a_lost_controller_sends_a_waiting_caller_to_on_unavailable(
        tmp_path: Path) -> None:
    d = await queued(tmp_path)
    agent = await d.agent()
    agent.rings()
    await d.settle()
    d.link.lost = True
    await d.tell(ControllerLost())
    assert agent.log == ["cancel"]
    assert d.session.run.node_name == "no_agents"


@runs_in_loop
async def test_a_lost_controller_leaves_a_talking_caller_with_the_agent(tmp_path: Path) -> None:
    d, agent = await bridged(tmp_path)
    d.link.lost = True
    await d.tell(ControllerLost())
    assert agent.log == [] and d.media.bridged
    agent.hangs_up()
    await d.settle()
    assert "play survey_intro" in d.caller.log  # after_agent, without the controller


# -- every message in every state -------------------------------------------------------------

STAGES = ["waiting", "queued", "ringing", "answered", "bridged", "held", "after_agent"]
MESSAGES: dict[str, Callable[[str], m.Message]] = {
    "queued": lambda c: m.Queued(c, "support", 1, 30),
    "announce": lambda c: m.Announce(c, "support", 1, 30),
    "exit": lambda c: m.Exit(c, "support", "timeout"),
    "offer": lambda c: m.Offer(c, "o7", "1002", "sip:1002@cc.test", "support", 5, 20),
    "cancel": lambda c: m.CancelOffer(c, "o1", "agent-state"),
    "connect": lambda c: m.Connect(c, "o1", "1001"),
    "requeued": lambda c: m.Requeued(c, "support", 1),
}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("message", list(MESSAGES))
@runs_in_loop
async def test_every_controller_message_in_every_stage_leaves_a_call_that_still_ends_cleanly(
        tmp_path: Path, stage: str, message: str) -> None:
    d = await Driver(FLOW, tmp_path).start()
    for digit in "9731":
        d.caller.send(DtmfReceived(1, digit, DtmfMethod.RFC4733))
    await d.settle()
    agent = None
    if stage != "waiting":
        await d.tell(m.Queued(d.call_id, "support", 1, 0))
    if stage not in ("waiting", "queued"):
        agent = await d.agent()
        agent.rings()
    if stage in ("answered", "bridged", "held", "after_agent"):
        agent.picks_up()  # type: ignore[union-attr]
        await d.settle()
    if stage in ("bridged", "held", "after_agent"):
        await d.tell(m.Connect(d.call_id, "o1", "1001"))
    if stage == "held":
        agent.holds()  # type: ignore[union-attr]
    if stage == "after_agent":
        agent.hangs_up()  # type: ignore[union-attr]
    await d.settle()
    await d.tell(MESSAGES[message](d.call_id))
    assert d.task is not None and (not d.task.done() or d.task.exception() is None)
    if stage in ("bridged", "held") and message != "connect":
        assert d.media.bridged == (stage == "bridged"), "the talk was cut"
    d.caller.hangs_up()
    await d.finish()
    assert d.store.ended() is not None
    for leg in d.media.agents:
        assert leg.ended is not None, f"agent leg {leg.leg_id} left up"
    # The ACD hears the caller's end at most once, and never after the call left it.
    assert len(d.link.of(m.CallerGone)) <= 1
    if stage == "after_agent" or (message == "exit" and stage not in ("bridged", "held")):
        assert not d.link.of(m.CallerGone)


# -- pure helpers -----------------------------------------------------------------------------


def test_header_names_and_one_line_values() -> None:
    assert header_name("caller_name") == "X-IVR-Caller-Name"
    assert header_name("account") == "X-IVR-Account"
    offer = m.Offer("c1", "o1", "7", "sip:7@x", "sales", 61.9, 20)
    headers = agent_headers("c1", offer, {"note": "two\r\nlines"}, "")
    assert headers == {"X-Queue": "sales", "X-Wait-S": "61", "X-Call-Id": "c1",
                       "X-IVR-Note": "two lines"}


@pytest.mark.parametrize(("code", "reason"), [(408, "no_answer"), (480, "no_answer"),
                                              (487, "no_answer"), (486, "rejected"),
                                              (404, "rejected"), (603, "rejected")])
def test_failure_reasons(code: int, reason: str) -> None:
    assert failure_reason(code) == reason


@runs_in_loop
async def test_a_callback_request_goes_to_the_acd_and_its_taking_ends_the_call(
        tmp_path: Path) -> None:
    from ivr import callback_messages as cm

    flow = make_flow({"q": {"type": "queue", "queue": "support", "callback": {"key": "1"},
                            "on_unavailable": "bye"}})
    d = await Driver(flow, tmp_path).start()
    await d.tell(m.Queued(d.call_id, "support", 2, 60))
    assert d.caller.log[-2:] == ["play callback_offer", "moh hold_music"]
    for key in "11":  # the option, then the number read back is confirmed
        d.caller.send(DtmfReceived(1, key, DtmfMethod.RFC4733))
        await d.settle()
    [request] = d.link.of(cm.CallbackRequest)
    assert request.number == "15550100"  # the caller's number, its digits
    assert request.data["caller_name"] == "Ada Caller"
    await d.tell(cm.CallbackTaken(d.call_id, "cb-x", "support", 2, 120))
    await d.finish()
    assert any(line.startswith("play callback_taken,") for line in d.caller.log)
    assert d.store.ended()["reason"] == "callback"  # type: ignore[index]
    assert not d.link.of(m.CallerGone)  # the call had left the queue: no abandon
    assert d.store.events("callback.taken")[0]["callback_id"] == "cb-x"
