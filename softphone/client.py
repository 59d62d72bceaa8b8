"""The agent API's client (docs/api.md): HTTP with httpx, the event stream with websockets.

Errors, translated at this boundary::

    ClientError
     ├── Refused        the server answered no (4xx): ``status`` and its message
     │    └── BadCredentials   401 at sign-in: wrong id or password (do not retry)
     └── Unreachable    no answer: connection refused or reset, timeout, 5xx
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

PREFIX = "/api/v1"


class ClientError(Exception):
    pass


class Refused(ClientError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class BadCredentials(Refused):
    pass


class Unreachable(ClientError):
    pass


class ApiClient:
    def __init__(self, base_url: str, agent_id: str, password: str,
                 timeout_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_id = agent_id
        self._password = password
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                       transport=transport)
        self.token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    auth: bool = True, params: dict[str, str] | None = None
                    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        try:
            r = await self._http.request(method, path, json=body, headers=headers,
                                         params=params)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{self.base_url}: {exc or type(exc).__name__}") from exc
        if r.status_code >= 500:
            raise Unreachable(f"{self.base_url}: server error {r.status_code}")
        if r.status_code >= 400:
            try:
                message = str(r.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = r.text[:200] or r.reason_phrase
            raise Refused(r.status_code, message)
        return r

    async def sign_in(self) -> dict[str, Any]:
        try:
            r = await self._call("POST", f"{PREFIX}/sessions", {
                "agent_id": self.agent_id, "password": self._password}, auth=False)
        except Refused as exc:
            if exc.status == 401:
                raise BadCredentials(exc.status, exc.message) from None
            raise
        data = r.json()
        self.token = str(data["token"])
        agent: dict[str, Any] = data["agent"]
        return agent

    async def sign_out(self) -> None:
        await self._call("DELETE", f"{PREFIX}/sessions/current")
        self.token = None

    async def set_state(self, state: str, reason: str = "") -> dict[str, Any]:
        r = await self._call("PUT", f"{PREFIX}/agents/{self.agent_id}/state",
                             {"state": state, "reason": reason})
        return dict(r.json())

    async def wrapup(self, code: str, note: str, call_id: str = "") -> dict[str, Any]:
        body = {"code": code, "note": note}
        if call_id:
            body["call_id"] = call_id
        r = await self._call("POST", f"{PREFIX}/agents/{self.agent_id}/wrapup", body)
        return dict(r.json())

    async def transfer(self, to: str) -> None:
        await self._call("POST", f"{PREFIX}/agents/{self.agent_id}/call/transfer", {"to": to})

    async def agent(self) -> dict[str, Any]:
        return dict((await self._call("GET", f"{PREFIX}/agents/{self.agent_id}")).json())

    async def figures(self) -> dict[str, Any]:
        r = await self._call("GET", f"{PREFIX}/agents/{self.agent_id}/figures")
        return dict(r.json())

    async def reason_codes(self, search: str = "") -> list[dict[str, str]]:
        r = await self._call("GET", f"{PREFIX}/reason-codes",
                             params={"search": search} if search else None)
        return list(r.json()["reason_codes"])

    async def not_ready_reasons(self) -> list[str]:
        r = await self._call("GET", f"{PREFIX}/not-ready-reasons")
        return [str(x) for x in r.json()["reasons"]]

    async def script(self, queue: str, language: str = "") -> dict[str, Any]:
        r = await self._call("GET", f"{PREFIX}/queues/{queue}/script",
                             params={"language": language} if language else None)
        return dict(r.json())

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The agent's events, ``hello`` first; ends (Unreachable) when the stream drops."""
        url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        url += f"{PREFIX}/agents/{self.agent_id}/events"
        try:
            async with connect(url, open_timeout=10) as ws:
                await ws.send(json.dumps({"token": self.token}))  # not in the URL
                async for message in ws:
                    yield json.loads(message)
                code, reason = ws.close_code, ws.close_reason
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise Unreachable(f"the event stream: {exc or type(exc).__name__}") from exc
        raise Unreachable(f"the event stream closed ({code} {reason})".strip())
