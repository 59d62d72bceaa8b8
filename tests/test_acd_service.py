"""The controller's ACD service and the agent desk, driven without a network: worker
messages in, typed messages to the worker out, agent events to the desk's subscribers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr import messages as m
from ivr.acd import QueueEvent, parse_acd
from ivr.acd_service import AcdService
from ivr.agent_credentials import AgentSip, make_hashes
from ivr.agent_desk import Desk
from ivr.desk import DeskError

ACD = """
queues:
  sales: {ring_timeout_s: 10, wrapup_s: 5, announce_every_s: 0, when_no_agents: wait}
  tiny: {max_size: 1, when_no_agents: wait}
agents:
  "1001": {name: Alice, queues: {sales: 5, tiny: 5}}
  "1002": {name: Bob, queues: {sales: 5}}
call_reasons:
  billing: {label: Billing, children: {refund: Refund}}
"""


class Rig:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sent: list[m.Message] = []
        self.rows: list[Any] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.service = AcdService(parse_acd(ACD), send=self._send, log_rows=self.rows.extend,
                                  agent_uri=lambda a: f"sip:{a}@example.test",
                                  on_agent_event=lambda a, e: self.events.append((a, e)),
                                  clock=lambda: self.now)
        ha1, ha1b = make_hashes("1001", "callcenter", "example.test", "s3cret-pass")
        self.cred = AgentSip("1001", "Alice", "callcenter", ha1, ha1b, (("sales", 5),), 0, 0)
        self.desk = Desk(self.service, lambda a: self.cred if a == "1001" else None,
                         clock=lambda: self.now)

    def _send(self, call_id: str, msg: m.Message) -> bool:
        self.sent.append(msg)
        return True

    def take(self) -> list[m.Message]:
        out, self.sent = self.sent, []
        return out


def test_a_queued_call_is_offered_answered_connected_and_ended_with_one_final_row() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join("c1", "sales", caller="5551234", data={"account": "42"}))
    sent = rig.take()
    assert isinstance(sent[0], m.Queued)
    offer = next(x for x in sent if isinstance(x, m.Offer))
    assert (offer.agent_id, offer.uri) == ("1001", "sip:1001@example.test")
    assert rig.desk.current_call("1001")["data"] == {"account": "42"}
    assert rig.desk.current_call("1001")["ivr_path"] == []
    rig.now += 2
    rig.service.on_message(m.OfferRinging("c1", offer.offer_id))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    assert [type(x) for x in rig.take()] == [m.Connect]
    assert rig.desk.agent("1001")["state"] == "on_call"
    rig.now += 30
    rig.service.on_message(m.AgentGone("c1"))
    assert rig.desk.agent("1001")["state"] == "wrap_up"
    events = [e["event"] for a, e in rig.events if a == "1001"]
    assert events.index("offered") < events.index("connected") < events.index("ended")
    ended = next(e for a, e in rig.events if e["event"] == "ended")
    assert (ended["call_id"], ended["by"]) == ("c1", "agent")
    finals = [r for r in rig.rows if r.call_id == "c1" and r.event in
              (QueueEvent.COMPLETEAGENT, QueueEvent.COMPLETECALLER, QueueEvent.ABANDON)]
    assert [r.event for r in finals] == [QueueEvent.COMPLETEAGENT]
    rig.desk.wrapup("1001", "billing/refund", "refunded")
    assert rig.desk.agent("1001")["state"] == "ready"
    assert rig.service.offer_latency_ms  # ringing was reported


def test_a_ring_no_answer_tries_the_next_agent_and_pauses_the_first() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.now += 1
    rig.desk.set_state("1002", "ready")
    rig.service.on_message(m.Join("c1", "sales"))
    first = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferFailed("c1", first.offer_id, "no_answer", 480))
    second = next(x for x in rig.take() if isinstance(x, m.Offer))
    assert second.agent_id != first.agent_id
    assert rig.desk.agent(first.agent_id)["state"] == "not_ready"
    assert rig.desk.agent(first.agent_id)["reason"] == "no-answer"


def test_a_full_queue_and_an_unknown_queue_send_the_caller_on() -> None:
    rig = Rig()
    rig.service.on_message(m.Join("c1", "tiny"))
    rig.service.on_message(m.Join("c2", "tiny"))
    rig.service.on_message(m.Join("c3", "nope"))
    exits = [x for x in rig.take() if isinstance(x, m.Exit)]
    assert [(x.call_id, x.reason) for x in exits] == [("c2", "full"), ("c3", "refused")]


def test_a_worker_dying_ends_its_calls_and_frees_the_agent() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join("c1", "sales"))
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    rig.service.calls_lost(["c1"])
    assert rig.desk.agent("1001")["state"] == "wrap_up"
    assert "c1" not in rig.service.calls


def test_the_desk_checks_passwords_and_refuses_bad_requests_clearly() -> None:
    rig = Rig()
    assert rig.desk.verify_password("1001", "s3cret-pass")
    assert not rig.desk.verify_password("1001", "wrong-pass")
    assert not rig.desk.verify_password("9999", "s3cret-pass")
    with pytest.raises(DeskError, match="unknown not-ready reason") as bad:
        rig.desk.set_state("1001", "not_ready", "napping")
    assert bad.value.status == 422
    with pytest.raises(DeskError, match="no agent '9999'") as missing:
        rig.desk.set_state("9999", "ready")
    assert missing.value.status == 404
    with pytest.raises(DeskError, match="unknown wrap-up code"):
        rig.desk.wrapup("1001", "nonsense")
    assert rig.desk.agent("1001")["state"] == "logged_out"
    assert rig.desk.reason_codes("refund") == [{"code": "billing/refund", "label": "Refund"}]


def test_a_wrap_up_naming_its_call_codes_only_the_agents_last_call() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join("c1", "sales", caller="5551234"))
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    rig.service.on_message(m.AgentGone("c1"))
    with pytest.raises(DeskError, match="c0 is not agent 1001's last call") as other:
        rig.desk.wrapup("1001", "billing/refund", "", call_id="c0")
    assert other.value.status == 409
    assert not [r for r in rig.rows if r.event is QueueEvent.WRAPUP]  # nothing coded
    rig.desk.wrapup("1001", "billing/refund", "", call_id="c1")
    assert [(r.call_id, r.code) for r in rig.rows if r.event is QueueEvent.WRAPUP] == [
        ("c1", "billing/refund")]


def test_subscribers_get_the_agents_events_in_order() -> None:
    async def run() -> list[str]:
        rig = Rig()
        rig.service._agent_event = rig.desk.publish
        queue = rig.desk.subscribe("1001")
        rig.desk.set_state("1001", "ready")
        rig.service.on_message(m.Join("c1", "sales"))
        offer = next(x for x in rig.take() if isinstance(x, m.Offer))
        rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
        rig.service.on_message(m.CallerGone("c1"))
        got = []
        while not queue.empty():
            got.append(queue.get_nowait()["event"])
        rig.desk.unsubscribe("1001", queue)
        rig.service.close()
        return got

    got = asyncio.run(run())
    assert got[0] == "state" and got.index("offered") < got.index("connected") < got.index(
        "ended")


def test_the_desk_gives_an_agents_figures_for_today_from_the_queue_log() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join("c1", "sales"))
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    rig.now += 40
    rig.service.on_message(m.CallerGone("c1"))
    figures = rig.desk.figures_today("1001")
    assert figures["calls_handled"] == 1
    assert figures["talk_s"] == pytest.approx(40.0)
    assert figures["avg_talk_s"] == pytest.approx(40.0) and figures["missed"] == 0
    assert figures["state"] == "wrap_up"


def test_the_call_view_gives_the_screen_pop_the_ivr_path_and_language() -> None:
    rig = Rig()
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join("c1", "sales", caller="5551234", data={
        "ivr_path": "main:2 > sales:1", "language": "de-DE"}))
    view = rig.desk.current_call("1001")
    assert (view["ivr_path"], view["language"]) == (["main:2", "sales:1"], "de-DE")
