"""The agent API served by the running stack's controller, over its real desk (the live
ACD and the store's SIP credentials): an agent signs in with the password of their phone,
goes ready, sees it on their WebSocket, and cannot touch another agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.conftest import start_stack

PASSWORD = "alice-pass-1001"
WAIT_S = 30.0


def test_an_agent_signs_in_goes_ready_and_sees_it_pushed_and_cannot_act_for_another(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        added = stack.ivr("agent", "add", "1001", "--name", "Alice", "--password", PASSWORD)
        assert added.returncode == 0, added.stderr
        base = f"http://127.0.0.1:{stack.env['IVR_HTTP_PORT']}"

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=WAIT_S) as http:
                bad = await http.post("/api/v1/sessions",
                                      json={"agent_id": "1001", "password": "wrong-one-x"})
                assert bad.status_code == 401
                r = await http.post("/api/v1/sessions",
                                    json={"agent_id": "1001", "password": PASSWORD})
                assert r.status_code == 201, r.text
                token = r.json()["token"]
                assert r.json()["agent"]["state"] == "logged_out"
                headers = {"Authorization": f"Bearer {token}"}
                ws_url = base.replace("http://", "ws://") + \
                    f"/api/v1/agents/1001/events?token={token}"
                async with connect(ws_url) as ws:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
                    assert hello["event"] == "hello"
                    put = await http.put("/api/v1/agents/1001/state", headers=headers,
                                         json={"state": "ready"})
                    assert put.status_code == 200, put.text
                    assert put.json()["state"] == "ready"
                    pushed = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
                    assert (pushed["event"], pushed["state"], pushed["old"]) == (
                        "state", "ready", "logged_out")
                other = await http.put("/api/v1/agents/1002/state", headers=headers,
                                       json={"state": "ready"})
                assert other.status_code == 403
                bad_reason = await http.put("/api/v1/agents/1001/state", headers=headers,
                                            json={"state": "not_ready", "reason": "napping"})
                assert bad_reason.status_code == 422
                assert "napping" in bad_reason.json()["error"]["message"]
                spec = await http.get("/openapi.json")
                assert spec.status_code == 200 and "/api/v1/sessions" in spec.json()["paths"]

        asyncio.run(scenario())
        shown = json.loads(stack.ivr("queue", "show", "--json").stdout)
        states = {a["id"]: a["state"] for q in shown["queues"] for a in q["agents"]}
        assert states["1001"] == "ready" and states["1002"] == "logged_out"  # 1002 untouched
    finally:
        assert stack.stop() == 0
