"""Storm mode: the emergency board (on, off, expiry, refusals), the caller's side in the
flow (the message before the queue's greeting; the outage report ending the call), and the
controller's part (persisted across a restart, every switch logged, workers told)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.acd.queue_log import QueueEvent
from ivr.controller_emergency import ControllerEmergency
from ivr.emergency import EmergencyBoard, EmergencyError, parse_duration
from ivr.store import CallStore
from tests.flow_driver import WALL, FakeCall
from tests.test_flow_nodes import make_flow

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def test_durations_read_as_ops_write_them() -> None:
    assert [parse_duration(t) for t in ("2h", "90m", "1h30m", "45s", "1d")] == [
        7200, 5400, 5400, 45, 86400]
    for bad in ("", "2x", "0s", "8d", "h"):
        with pytest.raises(EmergencyError, match="duration|between"):
            parse_duration(bad)


def test_the_board_switches_on_and_off_expires_and_refuses_clearly() -> None:
    board = EmergencyBoard({"support", "billing"})
    notice, row = board.switch_on("support", "outage_area", 100.0, 3600, "1")
    assert (row.event, row.queue, row.reason, row.code) == (
        QueueEvent.EMERGENCYON, "support", "outage_area", "1")
    assert board.state() == {"support": {"prompt": "outage_area", "expires_at": 3700.0,
                                         "outage_key": "1", "offer_callback": False}}
    with pytest.raises(EmergencyError, match="no queue 'sales'"):
        board.switch_on("sales", "outage_area", 100.0)
    with pytest.raises(EmergencyError, match="not one DTMF key"):
        board.switch_on("billing", "outage_area", 100.0, outage_key="12")
    with pytest.raises(EmergencyError, match="no emergency message is on for queue 'billing'"):
        board.switch_off("billing", 100.0)
    assert set(board.on) == {"support"}  # the refusals changed nothing
    assert board.expire(3699.0) == []
    (expired,) = board.expire(3700.0)
    assert expired.event is QueueEvent.EMERGENCYEXPIRED and not board.on
    board.switch_on("billing", "outage_area", 200.0)
    assert board.switch_off("billing", 300.0).event is QueueEvent.EMERGENCYOFF


QUEUE = {"type": "queue", "queue": "support", "prompts": ["support"],
         "on_unavailable": "bye"}
FLOW = make_flow({"q": QUEUE, "bye": {"type": "hangup"}})


def _call(notice: dict[str, object]) -> FakeCall:
    call = FakeCall(FLOW)
    call.run.emergencies = {"support": notice}
    return call


def test_the_emergency_message_plays_before_the_queue_greeting() -> None:
    call = _call({"prompt": "outage_area", "expires_at": None, "outage_key": ""})
    call.play("start done")
    assert call.visible == ["play outage_area", "play support"]
    call.play("done")
    assert call.visible[-1] == "queue support  0"
    assert call.notes("queue.emergency") == [{"node": "q", "queue": "support",
                                              "prompt": "outage_area"}]


def test_the_outage_key_ends_the_call_with_a_report() -> None:
    call = _call({"prompt": "outage_area", "expires_at": None, "outage_key": "1"})
    call.play("start")
    assert call.visible == ["play outage_area,outage_offer"]
    call.play("1")  # while the message plays
    assert call.visible[-2:] == ["stop", "play outage_thanks"]
    call.play("done")
    assert [h.reason for h in call.hangups()] == ["outage_report"]
    assert call.notes("queue.outage_report") == [{"node": "q", "queue": "support"}]
    # after the message, the key is still taken for a moment
    late = _call({"prompt": "outage_area", "expires_at": None, "outage_key": "1"})
    late.play("start done 1")
    assert late.visible[-1] == "play outage_thanks"
    # without the key the caller goes on to the queue after that moment
    other = _call({"prompt": "outage_area", "expires_at": None, "outage_key": "1"})
    other.play("start done 5 fire")  # another key changes nothing
    assert other.visible == ["play outage_area,outage_offer", "play support"]
    other.play("done")
    assert other.visible[-1] == "queue support  0"


def test_an_expired_or_other_queues_message_is_not_played() -> None:
    call = _call({"prompt": "outage_area", "expires_at": WALL.timestamp() - 1,
                  "outage_key": ""})
    call.play("start done")
    assert call.visible == ["play support", "queue support  0"]
    call = FakeCall(FLOW)
    call.run.emergencies = {"billing": {"prompt": "outage_area", "expires_at": None}}
    call.play("start")
    assert call.visible == ["play support"]


CB_QUEUE = {**QUEUE, "callback": {"key": "3"}}
CB_FLOW = make_flow({"q": CB_QUEUE, "bye": {"type": "hangup"}})
CB_NOTICE = {"prompt": "outage_area", "expires_at": None, "outage_key": "1",
             "offer_callback": True}


def test_storm_mode_may_follow_the_message_with_the_queues_callback_offer() -> None:
    from ivr.say import say

    call = FakeCall(CB_FLOW, {"caller": "5550001"})
    call.run.emergencies = {"support": CB_NOTICE}
    call.play("start")  # the message, the outage offer, then the callback offer
    assert call.visible == ["play outage_area,outage_offer,callback_offer"]
    call.play("3")  # the callback key: in line at once (no greeting) ...
    assert call.visible[-2:] == ["stop", "queue support  0"]
    assert call.notes("queue.emergency_callback") == [{"node": "q", "queue": "support"}]
    call.play("queued")  # ... then the dialogue: the number read back
    assert call.visible[-1] == ("play callback_number_is," + ",".join(
        say("digits", "5550001", "en-US")) + ",callback_confirm")
    call.play("done 1")
    assert call.visible[-1] == "callback 5550001"


def test_a_caller_who_lets_the_storm_callback_offer_pass_queues_as_always() -> None:
    call = FakeCall(CB_FLOW, {"caller": "5550001"})
    call.run.emergencies = {"support": CB_NOTICE}
    call.play("start done fire")  # no key within the moment after it: the greeting
    assert call.visible[-1] == "play support"
    call.play("done queued")  # in line: music, the offer not said twice
    assert call.visible[-2:] == ["queue support  0", "music hold_music"]
    call.play("3")  # the option still works as the queue's own
    assert "callback_number_is" in call.visible[-1]
    # without offer_callback, or in a node without the option, no offer with the message
    plain = FakeCall(CB_FLOW, {"caller": "5550001"})
    plain.run.emergencies = {"support": {**CB_NOTICE, "offer_callback": False}}
    plain.play("start")
    assert plain.visible == ["play outage_area,outage_offer"]
    other = _call({**CB_NOTICE, "outage_key": ""})  # FLOW's node has no callback option
    other.play("start done")
    assert other.visible == ["play outage_area", "play support"]


def test_the_callback_offer_needs_a_queue_that_takes_callbacks() -> None:
    board = EmergencyBoard({"support", "billing"}, callback_queues={"support"})
    with pytest.raises(EmergencyError, match="queue 'billing' takes no callbacks"):
        board.switch_on("billing", "outage_area", 100.0, offer_callback=True)
    assert not board.on
    notice, row = board.switch_on("support", "outage_area", 100.0, offer_callback=True)
    assert notice.wire()["offer_callback"] is True and "callback offered" in row.note


def test_the_controller_keeps_it_across_a_restart_logs_each_switch_and_tells_workers(
        tmp_path: Path) -> None:
    store = CallStore(tmp_path / "s.sqlite3")
    rows: list[object] = []
    room = ControllerEmergency(store, {"support"}, PROMPTS, rows.extend, 100.0, {"support"})
    told: list[bytes] = []
    room.broadcast = told.append
    with pytest.raises(EmergencyError, match="prompt 'no_such' is not in prompt set"):
        room.request("emergency.on", {"queue": "support", "prompt": "no_such"}, 100.0)
    data = room.request("emergency.on", {"queue": "support", "prompt": "outage_area",
                                         "expires": "2h", "outage_key": "1",
                                         "offer_callback": True}, 100.0)
    assert data["emergencies"][0]["expires_in_s"] == 7200
    assert json.loads(told[-1])["emergencies"]["support"]["prompt"] == "outage_area"
    room.close()
    store.close()

    store = CallStore(tmp_path / "s.sqlite3")
    room = ControllerEmergency(store, {"support"}, PROMPTS, rows.extend, 200.0)
    shown = room.request("emergency.show", {}, 200.0)["emergencies"]
    assert [(n["queue"], n["prompt"], n["outage_key"], n["offer_callback"]) for n in shown] == [
        ("support", "outage_area", "1", True)]
    room.request("emergency.off", {"queue": "support"}, 300.0)
    assert room.request("emergency.show", {}, 300.0) == {"emergencies": []}
    room.request("emergency.on", {"queue": "support", "prompt": "outage_area",
                                  "expires": "10s"}, 400.0)
    room.close()
    store.close()
    store = CallStore(tmp_path / "s.sqlite3")  # restarted after its expiry: off, logged
    room = ControllerEmergency(store, {"support"}, PROMPTS, rows.extend, 500.0)
    assert not room.board.on and store.emergencies() == []
    assert [r.event.value for r in rows] == [  # type: ignore[attr-defined]
        "EMERGENCYON", "EMERGENCYOFF", "EMERGENCYON", "EMERGENCYEXPIRED"]
    store.close()
