"""Queue and agent figures computed from the queue log the core writes."""

from __future__ import annotations

import pytest

from ivr.acd import events as ev
from ivr.acd.metrics import agent_figures, calls_waiting, longest_wait_s, queue_figures
from ivr.acd.queue_log import FINAL_EVENTS, QueueLogRow

from .acd_util import make_acd, of, ready, rows


def _day() -> list[QueueLogRow]:
    acd = make_acd({"sales": {"wrapup_s": 10, "announce_every_s": 0}},
                   {"a1": {"queues": {"sales": 5}}},
                   call_reasons={"sales": {"label": "Sales", "children": {"order": "Order"}}})
    log: list[QueueLogRow] = []

    def feed(event: ev.Event, now: float) -> list[ev.Action]:
        out = acd.handle(event, now)
        log.extend(rows(out))
        return out

    log.extend(rows(ready(acd, "a1", now=0.0)))
    offer = of(feed(ev.CallQueued("c1", "sales"), 0.0), ev.OfferAgent)[0]
    feed(ev.OfferAnswered(offer.offer_id), 5.0)  # waited 5 s
    feed(ev.CallQueued("c2", "sales"), 10.0)
    feed(ev.CallQueued("c3", "sales"), 11.0)
    feed(ev.CallQueued("c4", "sales"), 12.0)
    feed(ev.CallerHungUp("c3"), 16.0)  # a short abandon (5 s)
    feed(ev.CallerHungUp("c4"), 52.0)  # an abandon after 40 s
    feed(ev.CallerHungUp("c1"), 65.0)  # talked 60 s
    out = acd.tick(75.0)  # wrap-up over: a1 is rung for c2 (waited 65 s)
    log.extend(rows(out))
    feed(ev.OfferAnswered(of(out, ev.OfferAgent)[0].offer_id), 75.0)
    feed(ev.AgentHungUp("c2"), 105.0)  # talked 30 s
    feed(ev.WrapUpCoded("a1", "sales/order"), 110.0)  # 5 s of after-call work
    return log


def test_queue_figures_of_a_small_day() -> None:
    f = queue_figures(_day(), "sales", 120.0, service_level_s=20, short_abandon_s=20)
    assert (f.offered, f.answered, f.answered_in_service_level) == (4, 2, 1)
    assert (f.abandoned, f.short_abandons, f.calls_waiting) == (1, 1, 0)
    assert f.service_level == pytest.approx(1 / 3)  # 1 within 20 s of 4 offered - 1 short
    assert f.asa_s == pytest.approx(35.0)  # (5 + 65) / 2
    assert f.abandon_rate == pytest.approx(1 / 3)
    assert f.aht_s == pytest.approx((60 + 30 + 10 + 5) / 2)
    assert f.avg_talk_s == pytest.approx(45.0)


def test_agent_figures_time_in_each_state() -> None:
    f = agent_figures(_day(), "a1", 120.0)
    assert (f.calls_handled, f.calls_last_hour, f.talk_s, f.state) == (2, 2, 90.0, "ready")
    assert f.time_in_state_s == pytest.approx(
        {"ready": 10.0, "reserved": 5.0, "on_call": 90.0, "wrap_up": 15.0})
    assert agent_figures(_day(), "a1", 3700.0).calls_last_hour == 1


def test_waiting_figures_follow_enter_and_leave() -> None:
    acd = make_acd({"q": {"announce_every_s": 0}}, {"a1": {"queues": {"q": 5}}})
    log = rows(acd.handle(ev.CallQueued("c1", "q"), 3.0))
    log += rows(acd.handle(ev.CallQueued("c2", "q"), 7.0))
    assert calls_waiting(log, "q") == 2
    assert longest_wait_s(log, "q", 10.0) == 7.0
    log += rows(acd.handle(ev.CallerHungUp("c1"), 11.0))
    assert (calls_waiting(log, "q"), longest_wait_s(log, "q", 12.0)) == (1, 5.0)


def test_every_call_of_the_day_has_exactly_one_final_row() -> None:
    finals: dict[str, int] = {}
    for r in _day():
        if r.event in FINAL_EVENTS:
            finals[r.call_id] = finals.get(r.call_id, 0) + 1
    assert finals == {"c1": 1, "c2": 1, "c3": 1, "c4": 1}
