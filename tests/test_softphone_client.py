"""The agent API client (softphone/client.py) over httpx's MockTransport: what it sends,
and how the server's answers become its errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from softphone.client import ApiClient, BadCredentials, Refused, Unreachable


def client(handler: Any) -> ApiClient:
    return ApiClient("http://api.test", "1001", "pw-1", transport=httpx.MockTransport(handler))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_sign_in_keeps_the_token_and_sends_it_after() -> None:
    seen: list[tuple[str, str, str, Any]] = []

    def handler(r: httpx.Request) -> httpx.Response:
        body = json.loads(r.content) if r.content else None
        seen.append((r.method, r.url.path, r.headers.get("authorization", ""), body))
        if r.url.path == "/api/v1/sessions":
            return httpx.Response(201, json={"token": "T", "agent": {"id": "1001"}})
        return httpx.Response(200, json={"id": "1001", "state": "ready"})

    async def go() -> None:
        c = client(handler)
        assert (await c.sign_in())["id"] == "1001"
        await c.set_state("ready")
        await c.wrapup("support/fixed", "note", "c-7")
        await c.close()

    run(go())
    assert seen == [
        ("POST", "/api/v1/sessions", "", {"agent_id": "1001", "password": "pw-1"}),
        ("PUT", "/api/v1/agents/1001/state", "Bearer T", {"state": "ready", "reason": ""}),
        ("POST", "/api/v1/agents/1001/wrapup", "Bearer T",
         {"code": "support/fixed", "note": "note", "call_id": "c-7"})]


@pytest.mark.parametrize(("status", "error"), [(401, BadCredentials), (422, Refused),
                                               (500, Unreachable), (503, Unreachable)])
def test_answers_become_errors_with_the_servers_message(status: int, error: type) -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"status": status, "message": "nope"}})

    with pytest.raises(error) as got:
        run(client(handler).sign_in())
    if issubclass(error, Refused):
        assert got.value.message == "nope" and got.value.status == status


def test_no_connection_is_unreachable() -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(Unreachable, match="connection refused"):
        run(client(handler).set_state("ready"))
