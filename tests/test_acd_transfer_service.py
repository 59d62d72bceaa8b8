"""Transfers in the controller: the ACD service turns agents' requests (the desk, the
API's routes) and phones' REFERs into core events and the core's transfer actions into
messages to the worker and events on the agents' screens. No network: the API is driven
in-process (httpx's ASGI transport) over the real desk and service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from ivr import messages as m
from ivr import transfer_messages as tm
from ivr.api.app import make_app
from ivr.desk import DeskError
from ivr.messages import from_wire, to_wire

from .test_acd_service import Rig


def _connected(rig: Rig, agent: str = "1001") -> m.Offer:
    rig.desk.set_state(agent, "ready")
    rig.service.on_message(m.Join("c1", "sales", caller="5551234"))
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    rig.take()
    return offer


def _events(rig: Rig, agent: str, kind: str) -> list[dict[str, Any]]:
    return [e for a, e in rig.events if a == agent and e["event"] == kind]


def test_a_blind_transfer_releases_the_first_agent_and_rings_the_second() -> None:
    rig = Rig()
    _connected(rig)
    rig.desk.set_state("1002", "ready")
    rig.now += 30
    assert rig.desk.transfer_request("1001", "transfer", "agent:1002") == {
        "call_id": "c1", "to": "agent:1002"}
    sent = rig.take()
    assert [type(x) for x in sent] == [tm.Release, m.Offer]
    assert (sent[0].agent_id, sent[0].reason) == ("1001", "transferred")
    assert sent[1].agent_id == "1002"
    assert rig.desk.agent("1001")["state"] == "wrap_up"
    (told,) = _events(rig, "1001", "transferred")
    assert (told["to"], told["by"], told["kind"]) == ("agent:1002", "1001", "blind")
    rig.service.on_message(m.OfferAnswered("c1", sent[1].offer_id))
    assert [type(x) for x in rig.take()] == [m.Connect]
    assert rig.desk.current_call("1002")["state"] == "connected"


def test_requests_without_a_call_or_with_a_refused_target_say_why() -> None:
    rig = Rig()
    with pytest.raises(DeskError, match="agent 1001 has no call") as no_call:
        rig.desk.transfer_request("1001", "transfer", "agent:1002")
    assert no_call.value.status == 409
    _connected(rig)
    with pytest.raises(DeskError, match="1002 is logged_out") as refused:
        rig.desk.transfer_request("1001", "transfer", "agent:1002")
    assert refused.value.status == 422
    with pytest.raises(DeskError, match="has no consult") as no_consult:
        rig.desk.transfer_request("1001", "complete")
    assert no_consult.value.status == 409
    assert rig.take() == []  # nothing sent: nothing changed


def test_a_consult_holds_the_caller_then_completes_with_bridge_and_release() -> None:
    rig = Rig()
    _connected(rig)
    rig.desk.set_state("1002", "ready")
    rig.desk.transfer_request("1001", "consult", "agent:1002")
    hold, offer = rig.take()
    assert isinstance(hold, tm.ConsultHold) and isinstance(offer, m.Offer)
    assert hold.offer_id == offer.offer_id and offer.agent_id == "1002"
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    assert [type(x) for x in rig.take()] == [tm.ConsultConnect]
    states = [e["state"] for e in _events(rig, "1001", "consult")]
    assert states == ["ringing", "talking"]
    assert [e["state"] for e in _events(rig, "1002", "consult")] == ["ringing", "talking"]
    rig.desk.transfer_request("1001", "complete")
    sent = rig.take()
    assert {type(x) for x in sent} == {tm.Release, tm.BridgeAgent}
    assert rig.desk.current_call("1002")["state"] == "connected"
    assert rig.desk.agent("1001")["state"] == "wrap_up"
    assert _events(rig, "1002", "connected")


def test_a_phones_refer_becomes_a_transfer_and_a_refused_one_is_told() -> None:
    rig = Rig()
    _connected(rig)
    rig.service.on_message(tm.TransferAsked("c1", "1001", "agent:1002"))
    assert rig.take() == []  # 1002 is not signed in: refused, the agent keeps the caller
    (refused,) = _events(rig, "1001", "transfer_refused")
    assert "1002 is logged_out" in refused["reason"]
    rig.desk.set_state("1002", "ready")
    rig.service.on_message(tm.TransferAsked("c1", "1001", "agent:1002"))
    assert [type(x) for x in rig.take()] == [tm.Release, m.Offer]


def test_transfer_messages_cross_the_wire() -> None:
    for msg in (tm.TransferAsked("c1", "1001", "queue:billing", True),
                tm.Release("c1", "1001", "transferred"), tm.Conference("c1", ("1", "2")),
                tm.ConsultHold("c1", "1001", "c1#4", "1002")):
        assert from_wire(json.loads(to_wire(msg))) == msg


def test_the_api_routes_answer_202_409_and_422_with_the_reason() -> None:
    rig = Rig()
    app = make_app(rig.desk, clock=lambda: rig.now)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            r = await http.post("/api/v1/sessions",
                                json={"agent_id": "1001", "password": "s3cret-pass"})
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            url = "/api/v1/agents/1001/call"
            r = await http.post(f"{url}/transfer", json={"to": "agent:1002"}, headers=auth)
            assert r.status_code == 409, r.text
            assert r.json()["error"]["message"] == "agent 1001 has no call"
            _connected(rig)
            r = await http.post(f"{url}/transfer", json={"to": "queue:nope"}, headers=auth)
            assert r.status_code == 422
            assert "no queue 'nope'" in r.json()["error"]["message"]
            r = await http.post(f"{url}/transfer", json={"to": "fax:1"}, headers=auth)
            assert r.status_code == 422 and "to" in r.json()["error"]["message"]
            r = await http.post("/api/v1/agents/1002/call/transfer",
                                json={"to": "agent:1001"}, headers=auth)
            assert r.status_code == 403
            r = await http.post(f"{url}/consult/cancel", headers=auth)
            assert r.status_code == 409
            rig.desk.set_state("1002", "ready")
            r = await http.post(f"{url}/consult", json={"to": "agent:1002"}, headers=auth)
            assert r.status_code == 202 and r.json() == {"call_id": "c1", "to": "agent:1002"}
            r = await http.post(f"{url}/consult/cancel", headers=auth)
            assert r.status_code == 202 and r.json() == {"call_id": "c1"}
            r = await http.post(f"{url}/transfer", json={"to": "queue:sales"}, headers=auth)
            assert r.status_code == 202
            spec = (await http.get("/openapi.json")).json()
            assert "/api/v1/agents/{agent_id}/call/consult/complete" in spec["paths"]

    asyncio.run(run())


def test_the_operators_transfer_request_is_the_agents() -> None:
    from ivr import ops

    rig = Rig()
    _connected(rig)
    with pytest.raises(ops.OpsError, match="no queue 'nope'"):
        ops.handle(rig.service, rig.desk, "agent.transfer",
                   {"agent_id": "1001", "what": "transfer", "to": "queue:nope"}, rig.now)
    out = ops.handle(rig.service, rig.desk, "agent.transfer",
                     {"agent_id": "1001", "what": "transfer", "to": "queue:sales"}, rig.now)
    assert out == {"call_id": "c1", "to": "queue:sales"}
    assert rig.desk.agent("1001")["state"] == "wrap_up"


def test_a_phones_refer_with_replaces_during_a_consult_completes_it() -> None:
    rig = Rig()
    _connected(rig)
    rig.desk.set_state("1002", "ready")
    rig.desk.transfer_request("1001", "consult", "agent:1002")
    offer = next(x for x in rig.take() if isinstance(x, m.Offer))
    rig.service.on_message(m.OfferAnswered("c1", offer.offer_id))
    rig.take()
    # the first agent's phone joins its two calls (REFER with Replaces, mapped to the target)
    rig.service.on_message(tm.TransferAsked("c1", "1001", "agent:1002", attended=True))
    assert {type(x) for x in rig.take()} == {tm.Release, tm.BridgeAgent}
    assert rig.desk.current_call("1002")["state"] == "connected"
    (told,) = _events(rig, "1001", "transferred")
    assert told["kind"] == "attended"
