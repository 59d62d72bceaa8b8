"""Queued callbacks in the ACD core, with a fake clock: a callback keeps the caller's place
(never ahead of one who came before, never behind one who came after), one per number per
queue, retries and outcomes, calling hours, abandoned-call callbacks, own agent, and the
store round trip a restart relies on."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.acd import AcdError, AgentState, EntryState
from ivr.acd import events as ev
from ivr.acd.queue_log import QueueEvent
from ivr.store import CallStore

from .acd_util import make_acd, names, of, ready, rows

CB = {"sales": {"wrapup_s": 0, "ring_timeout_s": 15, "announce_every_s": 0,
                "callback": {"retries": 2, "retry_s": 300, "no_answer_s": 20}}}
A1 = {"a1": {"queues": {"sales": 5}}}


def _line(acd) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.call_id for e in acd.waiting("sales")]


def test_a_callback_keeps_the_callers_place_between_those_before_and_after() -> None:
    acd = make_acd(CB, A1)
    for i, at in enumerate([1.0, 2.0, 3.0]):
        acd.handle(ev.CallQueued(f"c{i}", "sales", caller=f"55500{i}"), at)
    out = acd.handle(ev.CallbackRequested("c1", "+33 1 23 45 67 89"), 10.0)
    assert names(out) == ["EXITCALLBACK", "CALLBACKREQUEST"]
    (taken,) = of(out, ev.CallbackTaken)
    assert (taken.call_id, taken.callback_id, taken.position) == ("c1", "cb-c1", 2)
    assert _line(acd) == ["c0", "cb-c1", "c2"]
    acd.handle(ev.CallQueued("c3", "sales"), 11.0)  # a later caller queues behind it
    assert _line(acd) == ["c0", "cb-c1", "c2", "c3"]
    served = []
    out = ready(acd, "a1", now=20.0)
    for now in (20.0, 40.0, 60.0, 80.0):
        (offer,) = of(out, ev.OfferAgent)
        served.append((offer.call_id, offer.kind))
        acd.handle(ev.OfferAnswered(offer.offer_id), now + 1)
        if offer.kind == "callback":
            acd.handle(ev.CustomerAnswered(offer.call_id), now + 2)
        out = acd.handle(ev.AgentHungUp(offer.call_id), now + 3)  # a1 is free: next one
    assert served == [("c0", "call"), ("cb-c1", "callback"), ("c2", "call"), ("c3", "call")]


def test_the_agent_is_offered_the_callback_marked_with_number_and_data() -> None:
    acd = make_acd(CB, A1)
    acd.handle(ev.CallQueued("c1", "sales", caller="5550001"), 1.0)
    acd.handle(ev.CallbackRequested("c1", "5550001", (("account", "42"),)), 2.0)
    out = ready(acd, "a1", now=3.0)
    (offer,) = of(out, ev.OfferAgent)
    assert (offer.call_id, offer.kind, offer.number) == ("cb-c1", "callback", "5550001")
    assert acd.entries["cb-c1"].data == {"account": "42"}
    out = acd.handle(ev.OfferAnswered(offer.offer_id), 4.0)
    (dial,) = of(out, ev.DialCustomer)
    assert (dial.number, dial.agent_id, dial.no_answer_s, dial.attempt) == (
        "5550001", "a1", 20, 1)
    assert names(out) == ["CALLBACKDIAL"]
    assert acd.agents["a1"].state is AgentState.ON_CALL
    out = acd.handle(ev.CustomerAnswered("cb-c1"), 9.0)
    assert of(out, ev.CallConnected)[0].call_id == "cb-c1"
    assert rows(out)[0].event is QueueEvent.CALLBACKCONNECT and rows(out)[0].wait_s == 8.0
    out = acd.handle(ev.CallerHungUp("cb-c1"), 39.0)  # the customer hangs up
    assert names(out) == ["CALLBACKCOMPLETE"]
    assert rows(out)[0].talk_s == 30.0
    assert of(out, ev.SaveCallback)[-1].record.state == "closed"
    assert of(out, ev.SaveCallback)[-1].record.outcome == "completed_caller"
    assert "cb-c1" not in acd.entries and acd.agents["a1"].state is AgentState.READY


def test_a_second_request_for_the_same_number_updates_the_first() -> None:
    acd = make_acd(CB, A1)
    acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    acd.handle(ev.CallQueued("c2", "sales"), 2.0)
    acd.handle(ev.CallbackRequested("c1", "5550001", (("note", "first"),)), 3.0)
    out = acd.handle(ev.CallbackRequested("c2", "555-0001", (("note", "second"),)), 4.0)
    assert names(out) == ["EXITCALLBACK", "CALLBACKUPDATE"]
    assert of(out, ev.CallbackTaken)[0].updated
    assert rows(out)[0].code == "cb-c1"
    assert _line(acd) == ["cb-c1"]
    assert acd.entries["cb-c1"].data == {"note": "second"}
    assert [e.call_id for e in acd.callbacks("sales")] == ["cb-c1"]
    # another queue's callback for the same number is its own
    acd2 = make_acd({**CB, "billing": CB["sales"]}, A1)
    acd2.handle(ev.CallQueued("c1", "sales"), 1.0)
    acd2.handle(ev.CallQueued("c2", "billing"), 2.0)
    acd2.handle(ev.CallbackRequested("c1", "5550001"), 3.0)
    acd2.handle(ev.CallbackRequested("c2", "5550001"), 3.0)
    assert len(acd2.callbacks()) == 2


def test_bad_requests_are_refused_with_a_reason_and_change_nothing() -> None:
    acd = make_acd({"sales": {}, **{"cbq": CB["sales"]}}, A1)
    acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    with pytest.raises(AcdError, match="takes no callbacks"):
        acd.handle(ev.CallbackRequested("c1", "5550001"), 2.0)
    acd.handle(ev.CallQueued("c2", "cbq"), 1.0)
    with pytest.raises(AcdError, match="not a number to call back"):
        acd.handle(ev.CallbackRequested("c2", "12ab"), 2.0)
    with pytest.raises(AcdError, match="not in a queue"):
        acd.handle(ev.CallbackRequested("nope", "5550001"), 2.0)
    assert set(acd.entries) == {"c1", "c2"}


def _to_dialing(acd, now: float) -> ev.DialCustomer:  # type: ignore[no-untyped-def]
    (offer,) = of(ready(acd, "a1", now=now), ev.OfferAgent)
    (dial,) = of(acd.handle(ev.OfferAnswered(offer.offer_id), now + 1), ev.DialCustomer)
    return dial


def test_not_reached_releases_the_agent_retries_every_retry_s_then_closes() -> None:
    acd = make_acd(CB, A1)
    acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    acd.handle(ev.CallbackRequested("c1", "5550001"), 2.0)
    outcomes = ["no_answer", "busy", "voicemail"]
    now = 10.0
    attempts = []
    for i, outcome in enumerate(outcomes):
        dial = _to_dialing(acd, now)
        attempts.append(dial.attempt)
        out = acd.handle(ev.CustomerNotReached("cb-c1", outcome), now + 21)
        assert rows(out)[0].event is QueueEvent.CALLBACKFAIL
        assert rows(out)[0].reason == outcome
        assert acd.agents["a1"].state is AgentState.READY  # released, not stuck
        if i < 2:
            assert acd.entries["cb-c1"].state is EntryState.WAITING
            # not offered again before retry_s, though the agent is ready
            assert not of(acd.tick(now + 21 + 299), ev.OfferAgent)
            # and the agent takes another caller meanwhile
            acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), now + 22)
            now = now + 21 + 300
            assert not of(acd.tick(now), ev.OfferAgent)  # due, but a1 is on a break
    assert attempts == [1, 2, 3]
    final = rows(out)
    assert [r.event for r in final if r.event is not QueueEvent.AGENTSTATE] == [
        QueueEvent.CALLBACKFAIL, QueueEvent.CALLBACKCLOSED]
    assert final[-1].reason == "voicemail"
    assert of(out, ev.SaveCallback)[-1].record.state == "closed"
    assert "cb-c1" not in acd.entries and not acd.callbacks()


def test_a_retried_callback_keeps_its_place_ahead_of_later_callers() -> None:
    acd = make_acd(CB, A1)
    acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    acd.handle(ev.CallbackRequested("c1", "5550001"), 2.0)
    _to_dialing(acd, 3.0)
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 3.5)
    acd.handle(ev.CustomerNotReached("cb-c1", "no_answer"), 25.0)
    acd.handle(ev.CallQueued("c2", "sales"), 30.0)
    assert _line(acd) == ["cb-c1", "c2"]
    # before its retry time the later caller is served; after it, the callback first
    (offer,) = of(ready(acd, "a1", now=40.0), ev.OfferAgent)
    assert offer.call_id == "c2"
    acd.handle(ev.CallQueued("c3", "sales"), 50.0)
    acd.handle(ev.CallerHungUp("c2"), 51.0)  # c2 gives up while a1's phone rings
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 52.0)
    ready(acd, "a1", now=400.0)
    assert of(acd.tick(400.0), ev.OfferAgent) == []  # already offered by ready(...)
    assert acd.entries["cb-c1"].state is EntryState.OFFERED


def test_callbacks_are_offered_only_inside_the_calling_hours() -> None:
    hours = {"sales": {**CB["sales"], "callback": {**CB["sales"]["callback"],
                                                   "hours": {"mon-fri": "09:00-18:00"},
                                                   "timezone": "UTC"}}}
    acd = make_acd(hours, A1)
    monday_8 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC).timestamp()
    acd.handle(ev.CallQueued("c1", "sales"), monday_8)
    acd.handle(ev.CallbackRequested("c1", "5550001"), monday_8 + 1)
    assert not of(ready(acd, "a1", now=monday_8 + 2), ev.OfferAgent)
    offers: list[ev.OfferAgent] = []
    t = monday_8 + 2
    while not offers and t < monday_8 + 7200:
        t = acd.next_timer() or t + 60
        offers = of(acd.tick(t), ev.OfferAgent)
    assert offers and offers[0].call_id == "cb-c1"
    assert monday_8 + 3600 <= t <= monday_8 + 3600 + 60  # at 09:00, within a recheck


def test_an_abandoned_caller_with_a_number_goes_on_the_callback_list() -> None:
    q = {"sales": {**CB["sales"], "abandoned_callback": True,
                   "abandoned_callback_within_s": 3600}}
    acd = make_acd(q, A1)
    acd.handle(ev.CallQueued("c1", "sales", caller="sip:5550001@example.com"), 1000.0)
    acd.handle(ev.CallQueued("c2", "sales", caller="anonymous"), 1001.0)
    acd.handle(ev.CallQueued("c3", "sales", caller="5550003"), 1002.0)
    out = acd.handle(ev.CallerHungUp("c1"), 1010.0)
    assert names(out) == ["ABANDON", "CALLBACKREQUEST"]
    assert rows(out)[1].reason == "abandoned"
    acd.handle(ev.CallerHungUp("c2"), 1011.0)  # anonymous: nobody to call back
    assert _line(acd) == ["cb-c1", "c3"]
    assert acd.entries["cb-c1"].number == "5550001"
    assert acd.entries["cb-c1"].kind == "abandoned"
    # not taken within the hour: closed as expired, with a row
    out = acd.tick(1010.0 + 3600)
    assert [r.reason for r in rows(out) if r.event is QueueEvent.CALLBACKCLOSED] == [
        "expired"]
    assert _line(acd) == ["c3"]


def test_an_abandoned_callback_closes_at_the_end_of_the_day_at_the_latest() -> None:
    q = {"sales": {**CB["sales"], "abandoned_callback": True}}
    acd = make_acd(q, A1)
    late = dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC).timestamp()
    acd.handle(ev.CallQueued("c1", "sales", caller="5550001"), late)
    acd.handle(ev.CallerHungUp("c1"), late + 5)
    assert acd.entries["cb-c1"].deadline == late + 3600  # midnight, before the 3 hours


def test_own_agent_is_offered_the_regular_caller_first_for_own_agent_s() -> None:
    q = {"sales": {"wrapup_s": 0, "announce_every_s": 0, "own_agent_s": 30}}
    agents = {"a1": {"queues": {"sales": 5}}, "a2": {"queues": {"sales": 5}}}
    acd = make_acd(q, agents)
    ready(acd, "a1", now=0.0)
    (offer,) = of(acd.handle(ev.CallQueued("c1", "sales", caller="5550001"), 1.0),
                  ev.OfferAgent)
    acd.handle(ev.OfferAnswered(offer.offer_id), 2.0)
    acd.handle(ev.AgentHungUp("c1"), 3.0)  # a1 served 5550001
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 4.0)
    ready(acd, "a2", now=5.0)
    out = acd.handle(ev.CallQueued("c2", "sales", caller="5550001"), 10.0)
    assert not of(out, ev.OfferAgent)  # a2 is free, but this caller's agent is a1
    out = acd.handle(ev.CallQueued("c3", "sales", caller="5550009"), 11.0)
    assert [o.call_id for o in of(out, ev.OfferAgent)] == ["c3"]  # others are not held
    acd.handle(ev.OfferAnswered(of(out, ev.OfferAgent)[0].offer_id), 12.0)
    acd.handle(ev.AgentHungUp("c3"), 13.0)  # a2 free again
    out = acd.tick(40.0)  # own_agent_s over: the normal strategy
    assert [(o.call_id, o.agent_id) for o in of(out, ev.OfferAgent)] == [("c2", "a2")]
    # and when the own agent is free in time, they get it
    acd2 = make_acd(q, agents)
    acd2.remember_agent("5550001", "a2")
    ready(acd2, "a1", "a2", now=0.0)
    out = acd2.handle(ev.CallQueued("c1", "sales", caller="5550001"), 1.0)
    assert [o.agent_id for o in of(out, ev.OfferAgent)] == ["a2"]


def test_callbacks_survive_a_restart_through_the_store_in_order(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "s.sqlite3")
    acd = make_acd(CB, A1)
    for i in range(4):
        acd.handle(ev.CallQueued(f"c{i}", "sales"), float(i + 1))
    saved = []
    for cid, number in (("c2", "5550002"), ("c0", "5550000"), ("c3", "5550003")):
        saved += of(acd.handle(ev.CallbackRequested(cid, number, (("k", cid),)), 10.0),
                    ev.SaveCallback)
    dial = _to_dialing(acd, 11.0)  # c0's callback is being dialled when the lights go
    assert dial.callback_id == "cb-c0"
    saved += of(acd.handle(ev.CustomerNotReached("cb-c0", "busy"), 20.0), ev.SaveCallback)
    for s in saved:
        store.save_callback(s.record)
    store.close()

    store = CallStore(tmp_path / "s.sqlite3")
    restored = make_acd(CB, A1)
    records = store.open_callbacks()
    assert [r.callback_id for r in records] == ["cb-c0", "cb-c2", "cb-c3"]
    assert records[0].attempts == 1 and records[0].not_before == 320.0
    for r in records:
        restored.handle(ev.CallbackRestored(r), 30.0)
    restored.handle(ev.CallQueued("c9", "sales"), 31.0)
    assert _line(restored) == ["cb-c0", "cb-c2", "cb-c3", "c9"]
    assert restored.entries["cb-c2"].data == {"k": "c2"}
    # the retry wait holds across the restart
    (offer,) = of(ready(restored, "a1", now=40.0), ev.OfferAgent)
    assert offer.call_id == "cb-c2"
    # a duplicate after the restart still updates the restored one
    restored.handle(ev.CallQueued("c10", "sales"), 41.0)
    out = restored.handle(ev.CallbackRequested("c10", "5550003"), 42.0)
    assert names(out) == ["EXITCALLBACK", "CALLBACKUPDATE"]
    store.close()


def test_a_store_of_schema_4_gains_the_callbacks_table(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=4")
    store = CallStore(path)
    assert store.open_callbacks() == []
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6


def test_a_store_of_schema_5_keeps_its_emergency_messages_and_gains_offer_callback(
        tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # schema 5's table, a notice on
        db.execute("CREATE TABLE emergencies (queue TEXT PRIMARY KEY, prompt TEXT NOT NULL, "
                   "set_at REAL NOT NULL, expires_at REAL, outage_key TEXT NOT NULL "
                   "DEFAULT '')")
        db.execute("INSERT INTO emergencies VALUES ('sales', 'outage_area', 1.0, NULL, '1')")
        db.execute("PRAGMA user_version=5")
    store = CallStore(path)
    (notice,) = store.emergencies()
    assert (notice.queue, notice.outage_key, notice.offer_callback) == ("sales", "1", False)
    store.save_emergency("sales", replace(notice, offer_callback=True))
    assert store.emergencies()[0].offer_callback is True
    store.close()


CONTROLLER_ACD = """
queues:
  sales:
    announce_every_s: 0
    wrapup_s: 0
    callback: {retries: 1, retry_s: 60}
agents:
  "1001": {name: Alice, queues: {sales: 5}}
"""


def test_a_restarted_controller_keeps_the_waiting_callbacks(tmp_path: Path) -> None:
    from ivr import callback_messages as cm
    from ivr import messages as m
    from ivr.config import load_settings
    from ivr.controller_acd import ControllerAcd

    acd_file = tmp_path / "acd.yaml"
    acd_file.write_text(CONTROLLER_ACD, encoding="utf-8")
    settings = load_settings(None, env={"IVR_PATHS_ACD": str(acd_file),
                                        "IVR_PATHS_VAR_DIR": str(tmp_path / "var")})
    store = CallStore(tmp_path / "s.sqlite3")
    room = ControllerAcd(settings, store, store.append_queue_log)
    sent: list[m.Message] = []
    room.service._send = lambda call_id, msg: sent.append(msg) or True  # type: ignore[method-assign]
    room.service.on_message(m.Join("c1", "sales", caller="5550001"))
    room.service.on_message(cm.CallbackRequest("c1", "5550001", {"account": "7"}))
    room.service.on_message(cm.CallbackRequest("c1", "5550001"))  # c1 has left: refused
    assert [type(x).__name__ for x in sent] == ["Queued", "CallbackTaken", "CallbackRefused"]
    assert "not in a queue" in sent[-1].reason  # type: ignore[attr-defined]
    room.close()
    store.close()

    store = CallStore(tmp_path / "s.sqlite3")
    room = ControllerAcd(settings, store, store.append_queue_log)
    (cb,) = room.service.acd.callbacks("sales")
    assert (cb.call_id, cb.number, cb.data) == ("cb-c1", "5550001", {"account": "7"})
    # no worker can place callbacks yet in this controller: kept, never offered
    room.service.request_state("1001", "ready")
    assert room.service.acd.agents["1001"].state is AgentState.READY
    assert not room.service.acd.offers
    events = [r.event for r in store.queue_log(call_id="c1")]
    assert events[-1] is QueueEvent.EXITCALLBACK
    room.close()
    store.close()


def test_callbacks_stay_when_the_last_agent_signs_out_and_show_in_queue_show() -> None:
    from ivr.acd_service import AcdService
    from ivr.ops import queue_show

    q = {"sales": {**CB["sales"], "when_no_agents": "overflow"}}
    acd = make_acd(q, A1)
    acd.handle(ev.AgentStateRequested("a1", "not_ready", "break"), 0.0)
    acd.handle(ev.CallQueued("c1", "sales"), 1.0)
    acd.handle(ev.CallQueued("c2", "sales"), 2.0)
    acd.handle(ev.CallbackRequested("c1", "5550001"), 3.0)
    out = acd.handle(ev.AgentStateRequested("a1", "logged_out"), 4.0)
    assert [o.call_id for o in of(out, ev.Overflow)] == ["c2"]  # the caller goes on
    assert _line(acd) == ["cb-c1"]  # the callback waits for the agents' return
    service = AcdService(acd.config, send=lambda c, msg: True, log_rows=lambda r: None,
                         agent_uri=lambda a: a, clock=lambda: 5.0)
    service.acd = acd
    (shown,) = queue_show(service, "sales", 5.0)["queues"][0]["waiting"]
    assert (shown["kind"], shown["number"], shown["call_id"]) == (
        "callback", "5550001", "cb-c1")


def test_the_agents_desk_hears_a_callback_connected_and_ended_like_a_queued_call() -> None:
    from ivr import callback_messages as cm
    from ivr import messages as m
    from ivr.acd_service import AcdService

    now = [1.0]
    desk: list[dict[str, object]] = []
    service = AcdService(make_acd(CB, A1).config, send=lambda c, msg: True,
                         log_rows=lambda r: None, agent_uri=lambda a: a,
                         on_agent_event=lambda a, e: desk.append({"agent": a, **e}),
                         clock=lambda: now[0])
    service.place_callback = lambda action: True  # type: ignore[method-assign]
    service.dial_customer = lambda action: True  # type: ignore[method-assign]
    service.acd.offer_callbacks = True
    service.on_message(m.Join("c1", "sales", caller="5550001"))
    service.on_message(cm.CallbackRequest("c1", "5550001", {"account": "7"}))

    def calls() -> list[tuple[object, ...]]:
        return [(e["event"], e.get("call_id") or e["call"]["call_id"],  # type: ignore[index]
                 e.get("by"), e.get("outcome"), e.get("wrapup_s"))
                for e in desk if e["event"] in ("offered", "connected", "ended")]

    def attempt(outcome: str | None) -> None:
        service.request_state("a1", "ready")
        (offer,) = service.acd.offers.values()
        service.on_message(m.OfferAnswered("cb-c1", offer.offer_id))
        now[0] += 1
        if outcome is not None:
            service.on_message(cm.CustomerNotReached("cb-c1", outcome))
            return
        service.on_message(cm.CustomerAnswered("cb-c1"))
        now[0] += 30
        service.on_message(m.CallerGone("cb-c1"))  # the customer hangs up

    attempt("voicemail")  # not reached: released at once, no wrap-up, the outcome told
    assert calls() == [("offered", "cb-c1", None, None, None),
                       ("ended", "cb-c1", "not_reached", "voicemail", 0.0)]
    service.acd.entries["cb-c1"].not_before = None  # its retry, without the wait
    service.request_state("a1", "not_ready", "break")
    desk.clear()
    attempt(None)
    assert calls() == [("offered", "cb-c1", None, None, None),
                       ("connected", "cb-c1", None, None, None),
                       ("ended", "cb-c1", "caller", None, 0.0)]  # the queue's wrapup_s
    connected = next(e for e in desk if e["event"] == "connected")
    call = connected["call"]
    assert (call["kind"], call["caller"], call["state"], call["data"]) == (  # type: ignore[index]
        "callback", "5550001", "connected", {"account": "7"})
