"""An agent's survey scores in their figures: the default flow's survey node (after the
agent) stores a ``survey`` call event with its score; ``GET /api/v1/agents/{id}/figures``
gives the count and mean of today's scores for the calls the agent completed. Here the real
desk over the live ACD service and a real SQLite store, behind the real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from ivr import messages as m
from ivr.acd import QueueEvent, QueueLogRow
from ivr.acd.metrics import SurveyFigures, agent_survey_scores
from ivr.agent_desk import Desk
from ivr.api.app import make_app
from ivr.api.server import ApiServer
from ivr.desk import DeskError
from ivr.store import CallStore
from tests.test_acd_service import Rig

T0 = 1_764_590_000.0
WAIT_S = 30.0


def row(event: QueueEvent, call_id: str, agent_id: str, at: float = T0) -> QueueLogRow:
    return QueueLogRow(at=at, call_id=call_id, queue="sales", agent_id=agent_id, event=event)


def test_an_agent_is_rated_for_the_calls_they_completed_not_for_those_passed_on() -> None:
    rows = [row(QueueEvent.COMPLETECALLER, "c1", "1001"),
            row(QueueEvent.COMPLETEAGENT, "c2", "1001"),
            row(QueueEvent.BLINDTRANSFER, "c3", "1001"),  # passed on to 1002
            row(QueueEvent.COMPLETECALLER, "c3", "1002")]
    scores = [("c1", 5), ("c2", 2), ("c3", 1), ("c9", 4)]  # c9: nobody's here
    assert agent_survey_scores(rows, "1001", scores) == SurveyFigures(2, 3.5)
    assert agent_survey_scores(rows, "1002", scores) == SurveyFigures(1, 1.0)
    assert agent_survey_scores(rows, "1003", scores) == SurveyFigures(0, None)


def take_call(rig: Rig, call_id: str, talk_s: float) -> None:
    rig.desk.set_state("1001", "ready")
    rig.service.on_message(m.Join(call_id, "sales"))
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered(call_id, offer.offer_id))
    rig.now += talk_s
    rig.service.on_message(m.CallerGone(call_id))
    rig.desk.wrapup("1001", "billing/refund", "")


def test_the_figures_endpoint_gives_the_agents_survey_count_and_mean_for_today(
        tmp_path: Path) -> None:
    store = CallStore(tmp_path / "calls.db")
    rig = Rig()
    rig.now = T0
    desk = Desk(rig.service, rig.desk._credentials, clock=lambda: rig.now,
                survey_scores=store.survey_scores)
    for n, (call_id, score) in enumerate([("c1", 4), ("c2", 1), ("c3", None)]):
        take_call(rig, call_id, 30)
        store.call_arrived(call_id, rig.now - 40, sip_call_id=f"s{n}", worker="w1",
                           from_uri="sip:5551@x", to_uri="sip:100@x", flow="default",
                           flow_version=1)
        if score is not None:  # c3's caller hung up on the question
            store.call_event(call_id, rig.now + 2, "survey",
                             {"node": "survey", "question": "", "score": score})
        rig.now += 10

    async def scenario() -> dict[str, object]:
        server = ApiServer(make_app(desk, clock=lambda: rig.now), "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False,
                                         timeout=WAIT_S) as http:
                r = await http.post("/api/v1/sessions",
                                    json={"agent_id": "1001", "password": "s3cret-pass"})
                assert r.status_code == 201, r.text
                token = r.json()["token"]
                r = await http.get("/api/v1/agents/1001/figures",
                                   headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
                return dict(r.json())
        finally:
            await server.stop()

    try:
        figures = asyncio.run(scenario())
    finally:
        store.close()
    assert figures["calls_handled"] == 3
    assert figures["aht_s"] == 30.0  # 30 s talk, each coded at once (no wrap-up time)
    assert (figures["survey_count"], figures["survey_mean"]) == (2, 2.5)


def test_a_wrap_up_sent_again_for_a_call_coded_before_a_restart_is_refused_harmlessly(
        ) -> None:
    """The softphone re-sends what its outbox kept; the restarted server has the WRAPUP
    row from the store but not the agent's memory of it: still "already has its code"
    (the softphone drops it), and no second WRAPUP row."""
    rig = Rig()
    take_call(rig, "c1", 30)
    rig.service.acd.agents["1001"].coded_call_id = None  # what a restart forgets
    with pytest.raises(DeskError, match="call c1 already has its code") as refused:
        rig.desk.wrapup("1001", "billing/refund", "again", call_id="c1")
    assert refused.value.status == 409
    assert sum(r.event is QueueEvent.WRAPUP for r in rig.rows) == 1
