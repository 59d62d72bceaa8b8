"""The agent API over a real uvicorn server on 127.0.0.1 (ApiServer, in the test's own event
loop), driven by real HTTP and WebSocket clients (httpx, websockets). The desk behind it is
an in-memory fake (tests/api_fake_desk.py): what the API may and may not ask of it is the
point here; the controller's desk over the ACD has its own tests."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ivr.api.app import make_app, routes
from ivr.api.server import ApiServer, ApiServerError
from tests.api_fake_desk import FakeDesk

ALICE, ALICE_PW = "1001", "alice-secret-1"
BOB, BOB_PW = "1002", "bob-secret-22"
T0 = 1_764_590_000.0
WAIT_S = 30.0  # generous bound on any one reply: the tests never measure time


@dataclass
class Api:
    desk: FakeDesk
    server: ApiServer
    http: httpx.AsyncClient
    clock: list[float]

    async def sign_in(self, agent_id: str = ALICE, password: str = ALICE_PW) -> str:
        r = await self.http.post("/api/v1/sessions",
                                 json={"agent_id": agent_id, "password": password})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def ws_url(self, agent_id: str, token: str | None = None) -> str:
        url = self.server.url.replace("http://", "ws://") + f"/api/v1/agents/{agent_id}/events"
        return url if token is None else f"{url}?token={token}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def serve(scenario: Callable[[Api], Awaitable[None]], **app_kw: Any) -> None:
    async def main() -> None:
        desk = FakeDesk()
        desk.add(ALICE, "Alice Chen", ALICE_PW, sales=8)
        desk.add(BOB, "Bob Ode", BOB_PW, support=5)
        clock = [T0]
        server = ApiServer(make_app(desk, clock=lambda: clock[0], **app_kw), "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False,
                                         timeout=WAIT_S) as http:
                await scenario(Api(desk, server, http, clock))
        finally:
            await server.stop()

    asyncio.run(main())


def error_of(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == r.status_code, body
    message: str = body["error"]["message"]
    return message


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    return data


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


# --- sign in / out ------------------------------------------------------------------------

def test_an_agent_signs_in_with_the_sip_password_and_gets_a_token() -> None:
    async def scenario(api: Api) -> None:
        r = await api.http.post("/api/v1/sessions",
                                json={"agent_id": ALICE, "password": ALICE_PW})
        assert r.status_code == 201
        body = r.json()
        assert len(body["token"]) >= 43  # 32 random bytes, URL-safe base64
        assert body["role"] == "agent" and body["expires_at"] == T0 + 12 * 3600
        assert body["agent"]["id"] == ALICE and body["agent"]["name"] == "Alice Chen"
        me = await api.http.get(f"/api/v1/agents/{ALICE}", headers=auth(body["token"]))
        assert me.status_code == 200 and me.json()["queues"] == {"sales": 8}
        other = await api.sign_in()
        assert other != body["token"]

    serve(scenario)


def test_a_wrong_password_is_401_and_the_attempt_is_logged_without_it(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(api: Api) -> None:
        for agent_id, password in ((ALICE, "not-the-password"), ("9999", ALICE_PW)):
            r = await api.http.post("/api/v1/sessions",
                                    json={"agent_id": agent_id, "password": password})
            assert r.status_code == 401
            assert error_of(r) == "wrong agent id or password"

    with caplog.at_level(logging.INFO, logger="ivr.api"):
        serve(scenario)
    refused = [r.getMessage() for r in caplog.records if "sign-in refused" in r.getMessage()]
    assert len(refused) == 2 and "'1001'" in refused[0] and "'9999'" in refused[1]
    assert all("not-the-password" not in m and ALICE_PW not in m for m in caplog.messages)


def test_requests_without_a_valid_token_are_401_and_change_nothing() -> None:
    async def scenario(api: Api) -> None:
        path = f"/api/v1/agents/{ALICE}/state"
        for headers in ({}, auth("made-up-token"), {"Authorization": "Basic eDp5"}):
            r = await api.http.put(path, json={"state": "ready"}, headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "sign in" in error_of(r)
        assert api.desk.changes == []

    serve(scenario)


def test_a_token_expires_after_the_configured_ttl() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        api.clock[0] = T0 + 599
        assert (await api.http.get(f"/api/v1/agents/{ALICE}", headers=auth(token))
                ).status_code == 200
        api.clock[0] = T0 + 600
        r = await api.http.get(f"/api/v1/agents/{ALICE}", headers=auth(token))
        assert r.status_code == 401 and "expired" in error_of(r)

    serve(scenario, token_ttl_s=600)


def test_signing_out_logs_the_agent_out_drops_the_token_and_closes_its_stream() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        await api.http.put(f"/api/v1/agents/{ALICE}/state", json={"state": "ready"},
                           headers=auth(token))
        async with connect(api.ws_url(ALICE, token)) as ws:
            assert (await recv_json(ws))["event"] == "hello"
            r = await api.http.delete("/api/v1/sessions/current", headers=auth(token))
            assert r.status_code == 204
            assert await closed_with(ws) == (4401, "signed out")
        assert api.desk.agents[ALICE].state == "logged_out"
        assert api.desk.changes[-1] == ("state", ALICE, "logged_out", "")
        r = await api.http.get(f"/api/v1/agents/{ALICE}", headers=auth(token))
        assert r.status_code == 401

    serve(scenario)


# --- state, wrap-up, calls, figures ---------------------------------------------------------

def test_an_agent_goes_ready_and_not_ready_with_a_reason() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        path = f"/api/v1/agents/{ALICE}/state"
        r = await api.http.put(path, json={"state": "ready"}, headers=auth(token))
        assert r.status_code == 200 and r.json()["state"] == "ready"
        r = await api.http.put(path, json={"state": "not-ready", "reason": "lunch"},
                               headers=auth(token))
        assert r.status_code == 200
        assert (r.json()["state"], r.json()["reason"]) == ("not_ready", "lunch")
        assert api.desk.changes == [("state", ALICE, "ready", ""),
                                    ("state", ALICE, "not_ready", "lunch")]

    serve(scenario)


def test_wrap_up_reports_the_code_and_note_and_desk_refusals_keep_their_status() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        path = f"/api/v1/agents/{ALICE}/wrapup"
        r = await api.http.post(path, json={"code": "billing/refund"}, headers=auth(token))
        assert r.status_code == 409 and "not in wrap-up" in error_of(r)
        api.desk.agents[ALICE].state = "wrap_up"
        r = await api.http.post(path, json={"code": "no/such"}, headers=auth(token))
        assert r.status_code == 422 and "no/such" in error_of(r)
        r = await api.http.post(path, json={"code": "billing/refund", "note": "sent form"},
                                headers=auth(token))
        assert r.status_code == 200 and r.json()["state"] == "ready"
        assert api.desk.changes == [("wrapup", ALICE, "billing/refund", "sent form")]
        # the call it codes may be named (a softphone sending one typed offline)
        api.desk.agents[ALICE].state = "wrap_up"
        r = await api.http.post(path, json={"code": "billing/refund", "call_id": "c-7"},
                                headers=auth(token))
        assert r.status_code == 200, r.text
        assert api.desk.changes[-1] == ("wrapup", ALICE, "billing/refund", "", "c-7")

    serve(scenario)


def test_the_current_call_and_the_call_info_link_show_only_the_agents_own_calls() -> None:
    async def scenario(api: Api) -> None:
        alice, bob = await api.sign_in(), await api.sign_in(BOB, BOB_PW)
        r = await api.http.get(f"/api/v1/agents/{ALICE}/call", headers=auth(alice))
        assert r.status_code == 204 and r.content == b""
        call = {"call_id": "c-42", "queue": "sales", "state": "connected", "caller": "1000",
                "caller_name": "", "wait_s": 12.0, "since": T0, "data": {"account": "42"}}
        api.desk.give_call(ALICE, call)
        r = await api.http.get(f"/api/v1/agents/{ALICE}/call", headers=auth(alice))
        assert r.status_code == 200 and r.json()["data"] == {"account": "42"}
        assert (await api.http.get("/api/v1/calls/c-42", headers=auth(alice))).json() == call
        r = await api.http.get("/api/v1/calls/c-42", headers=auth(bob))
        assert r.status_code == 404 and error_of(r) == "no call c-42 of agent 1002"
        r = await api.http.get("/api/v1/calls/c-99", headers=auth(alice))
        assert r.status_code == 404

    serve(scenario)


def test_figures_reason_codes_and_not_ready_reasons() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        r = await api.http.get(f"/api/v1/agents/{ALICE}/figures", headers=auth(token))
        assert r.status_code == 200 and r.json()["calls_handled"] == 3
        r = await api.http.get("/api/v1/reason-codes", params={"search": "billing"},
                               headers=auth(token))
        assert [c["code"] for c in r.json()["reason_codes"]] == ["billing/refund",
                                                                  "billing/invoice"]
        r = await api.http.get("/api/v1/not-ready-reasons", headers=auth(token))
        assert "lunch" in r.json()["reasons"]

    serve(scenario)


# --- one agent cannot act for another --------------------------------------------------------

def test_an_agent_cannot_act_for_another_and_nothing_changes() -> None:
    async def scenario(api: Api) -> None:
        alice = await api.sign_in()
        api.desk.agents[BOB].state = "wrap_up"
        before = api.desk.agent(BOB)
        for method, path, body in (
                ("GET", f"/api/v1/agents/{BOB}", None),
                ("PUT", f"/api/v1/agents/{BOB}/state", {"state": "logged_out"}),
                ("POST", f"/api/v1/agents/{BOB}/wrapup", {"code": "billing/refund"}),
                ("GET", f"/api/v1/agents/{BOB}/call", None),
                ("GET", f"/api/v1/agents/{BOB}/figures", None)):
            r = await api.http.request(method, path, json=body, headers=auth(alice))
            assert r.status_code == 403, (method, path)
            assert error_of(r) == "agent 1001 may not act for agent 1002"
        assert api.desk.changes == [] and api.desk.agent(BOB) == before
        async with connect(api.ws_url(BOB, alice)) as ws:
            code, reason = await closed_with(ws)
        assert (code, reason) == (4403, "agent 1001 may not follow agent 1002")
        assert api.desk.subscribers(BOB) == 0

    serve(scenario)


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "says"), [
    ({}, 422, "state: missing"),
    ({"state": "sleeping"}, 422, "state: Input should be 'ready'"),
    ({"state": "ready", "colour": "red"}, 422, "colour: not a field of this request"),
    ({"state": "not_ready", "reason": "x" * 65}, 422, "reason: String should have at most 64"),
    ({"state": 7}, 422, "state: Input should be"),
    (["ready"], 422, "must be a JSON object with: state, reason, not list"),
    ("{not json", 422, "the request body is not JSON"),
    ("", 422, "the request needs a JSON object body with: state, reason"),
    ("x" * 70_000, 413, "at most 65536"),
])
def test_bad_input_gets_a_4xx_naming_the_field(body: Any, status: int, says: str) -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        raw = body if isinstance(body, str) else json.dumps(body)
        r = await api.http.put(f"/api/v1/agents/{ALICE}/state", content=raw,
                               headers={**auth(token), "Content-Type": "application/json"})
        assert r.status_code == status
        assert says in error_of(r)
        assert api.desk.changes == []

    serve(scenario)


def test_a_not_ready_reason_the_desk_does_not_know_is_its_422() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        r = await api.http.put(f"/api/v1/agents/{ALICE}/state",
                               json={"state": "not_ready", "reason": "nap"}, headers=auth(token))
        assert r.status_code == 422 and "'nap' is not a not-ready reason" in error_of(r)

    serve(scenario)


def test_unknown_paths_wrong_methods_and_server_failures_are_json_without_traceback() -> None:
    async def scenario(api: Api) -> None:
        r = await api.http.get("/api/v2/nothing")
        assert r.status_code == 404 and "no such endpoint: /api/v2/nothing" in error_of(r)
        r = await api.http.get("/api/v1/sessions")
        assert r.status_code == 405 and "GET is not allowed" in error_of(r)
        token = await api.sign_in()
        api.desk.fail_with = RuntimeError("database is locked")
        r = await api.http.get(f"/api/v1/agents/{ALICE}", headers=auth(token))
        assert r.status_code == 500 and error_of(r).startswith("internal error")
        assert "Traceback" not in r.text and "database is locked" not in r.text

    serve(scenario)


# --- the events WebSocket ------------------------------------------------------------------

def test_the_websocket_gets_one_calls_events_in_the_order_the_desk_pushes_them() -> None:
    call = {"call_id": "c-7", "queue": "sales", "state": "ringing", "caller": "1000",
            "caller_name": "", "wait_s": 4.0, "since": T0, "data": {"account": "42"}}
    pushed = [
        {"event": "offered", "at": T0 + 1, "call": call},
        {"event": "connected", "at": T0 + 3, "call": {**call, "state": "connected"}},
        {"event": "held", "at": T0 + 5, "call_id": "c-7"},
        {"event": "resumed", "at": T0 + 6, "call_id": "c-7"},
        {"event": "ended", "at": T0 + 9, "call_id": "c-7", "by": "caller", "wrapup_s": 30.0},
        {"event": "state", "at": T0 + 9, "state": "wrap_up", "old": "ready", "reason": ""},
    ]

    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        async with connect(api.ws_url(ALICE, token)) as ws:
            hello = await recv_json(ws)
            assert hello["event"] == "hello" and hello["agent"]["id"] == ALICE
            assert api.desk.subscribers(ALICE) == 1
            for event in pushed:
                api.desk.push(ALICE, event)
            got = [await recv_json(ws) for _ in pushed]
        assert got == pushed
        for _ in range(100):  # the server notices the close and unsubscribes
            if api.desk.subscribers(ALICE) == 0:
                break
            await asyncio.sleep(0.05)
        assert api.desk.subscribers(ALICE) == 0

    serve(scenario)


def test_the_websocket_takes_the_token_as_its_first_message() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        async with connect(api.ws_url(ALICE)) as ws:
            await ws.send(json.dumps({"token": token}))
            assert (await recv_json(ws))["event"] == "hello"
            api.desk.push(ALICE, {"event": "held", "at": T0, "call_id": "c-1"})
            assert (await recv_json(ws))["event"] == "held"

    serve(scenario)


@pytest.mark.parametrize(("first", "reason"), [
    ("?token=made-up", "the token is unknown or expired: sign in again"),
    ('{"token": "made-up"}', "the token is unknown or expired: sign in again"),
    ("not json", "no token: connect with ?token=... or send {\"token\": \"...\"} first"),
])
def test_a_bad_token_on_the_websocket_is_refused_with_4401(first: str, reason: str) -> None:
    async def scenario(api: Api) -> None:
        url = api.ws_url(ALICE) + (first if first.startswith("?") else "")
        async with connect(url) as ws:
            if not first.startswith("?"):
                await ws.send(first)
            assert await closed_with(ws) == (4401, reason)
        assert api.desk.subscribers(ALICE) == 0

    serve(scenario)


def test_a_websocket_that_never_sends_its_token_is_closed_after_the_auth_timeout() -> None:
    async def scenario(api: Api) -> None:
        async with connect(api.ws_url(ALICE)) as ws:
            code, _ = await closed_with(ws)
        assert code == 4401

    serve(scenario, ws_auth_timeout_s=0.2)


# --- OpenAPI and serving -------------------------------------------------------------------

def test_openapi_describes_every_route_and_nothing_else() -> None:
    async def scenario(api: Api) -> None:
        r = await api.http.get("/openapi.json")
        assert r.status_code == 200
        spec = r.json()
        assert spec["openapi"].startswith("3.1")
        described = {(path, method.upper()) for path, ops in spec["paths"].items()
                     for method in ops if not method.startswith("x-")}
        served = set()
        for route in routes():
            methods = getattr(route, "methods", None) or {"GET"}  # a WebSocket: its GET
            served |= {(route.path, m) for m in methods if m != "HEAD"}  # type: ignore[attr-defined]
        assert described == served
        for path, ops in spec["paths"].items():
            for op in ops.values():
                if isinstance(op, dict):
                    assert op["summary"] and op["responses"], path
                    refs = json.dumps(op)
                    for name in set(refs.split("#/components/schemas/")[1:]):
                        assert name.split('"')[0] in spec["components"]["schemas"]

    serve(scenario)


def test_a_taken_port_is_a_clear_error_naming_the_address() -> None:
    async def main() -> None:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            server = ApiServer(make_app(FakeDesk()), "127.0.0.1", port)
            with pytest.raises(ApiServerError, match=f"http://127.0.0.1:{port}: the port is "
                                                     "taken"):
                await server.start()
        finally:
            taken.close()

    asyncio.run(main())


def test_the_server_stops_and_frees_its_port_with_a_websocket_open() -> None:
    async def main() -> None:
        desk = FakeDesk()
        desk.add(ALICE, "Alice Chen", ALICE_PW)
        server = ApiServer(make_app(desk), "127.0.0.1", 0)
        await server.start()
        port = server.port
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            r = await http.post("/api/v1/sessions",
                                json={"agent_id": ALICE, "password": ALICE_PW})
            token = r.json()["token"]
        ws = await connect(server.url.replace("http", "ws") +
                           f"/api/v1/agents/{ALICE}/events?token={token}")
        assert json.loads(await ws.recv())["event"] == "hello"
        await server.stop()
        code, _ = await closed_with(ws)
        assert code == 1012  # uvicorn's "service restart" on shutdown
        assert desk.subscribers(ALICE) == 0
        again = ApiServer(make_app(desk), "127.0.0.1", port)
        await again.start()
        await again.stop()

    asyncio.run(main())


def test_serving_leaves_the_controllers_signal_handlers_alone() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    async def main() -> None:
        server = ApiServer(make_app(FakeDesk()), "127.0.0.1", 0)
        await server.start()
        during = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        await server.stop()
        assert during == {signal.SIGINT: mine, signal.SIGTERM: mine}

    old = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(main())
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def test_the_queue_script_for_the_calls_language_and_unknown_queues() -> None:
    async def scenario(api: Api) -> None:
        token = await api.sign_in()
        r = await api.http.get("/api/v1/queues/sales/script", params={"language": "en-GB"},
                               headers=auth(token))
        assert r.status_code == 200 and r.json()["steps"] == ["Hello"]
        assert api.desk.changes[-1] == ("script", "sales", "en-GB")
        r = await api.http.get("/api/v1/queues/nope/script", headers=auth(token))
        assert r.status_code == 404 and "nope" in error_of(r)
        r = await api.http.get("/api/v1/queues/sales/script")
        assert r.status_code == 401

    serve(scenario)
