"""The agent's event stream: ``WS /api/v1/agents/{id}/events``.

The token comes as ``?token=...`` or, for clients that keep it out of URLs (and logs), as
the first message ``{"token": "..."}`` within the auth timeout. Then the stream sends
``{"event": "hello", "at", "agent": <agent view>}`` (the subscription is live from here
on) and every event ``desk.subscribe()`` yields, as JSON, one message each, as it comes.

Closes (code, reason): 4401 no/bad/expired token or signed out, 4403 another agent's
stream; 1000 never from us except on server shutdown (uvicorn's 1012). Messages the client
sends after the token are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .auth import may_act_for

if TYPE_CHECKING:
    from .app import ApiContext

log = logging.getLogger("ivr.api")

CLOSE_BAD_TOKEN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_SIGNED_OUT = 4401
CLOSE_INTERNAL = 1011  # RFC 6455 7.4.1


@dataclass(eq=False)  # by identity: kept in sets
class _Stream:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    code: int = CLOSE_BAD_TOKEN
    reason: str = ""


class EventStreams:
    """The open streams by token, so that signing out closes that token's streams."""

    def __init__(self) -> None:
        self._by_token: dict[str, set[_Stream]] = {}

    def open(self, token: str) -> _Stream:
        stream = _Stream()
        self._by_token.setdefault(token, set()).add(stream)
        return stream

    def close(self, token: str, stream: _Stream) -> None:
        streams = self._by_token.get(token)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_token[token]

    async def close_token(self, token: str, code: int, reason: str) -> None:
        for stream in self._by_token.get(token, set()):
            stream.code, stream.reason = code, reason
            stream.stop.set()

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_token.values())


async def _first_token(ws: WebSocket, timeout_s: float) -> str | None:
    try:
        text = await asyncio.wait_for(ws.receive_text(), timeout_s)
    except TimeoutError:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    token = message.get("token") if isinstance(message, dict) else None
    return token if isinstance(token, str) and token else None


async def agent_events(ws: WebSocket) -> None:
    try:
        await _serve_stream(ws)
    except Exception:
        log.exception("agent API: the event stream %s failed", ws.url.path)
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_INTERNAL, "internal error (logged on the server)")


async def _serve_stream(ws: WebSocket) -> None:
    ctx: ApiContext = ws.app.state.ctx
    agent_id = ws.path_params["agent_id"]
    await ws.accept()
    try:
        token = ws.query_params.get("token") or await _first_token(ws, ctx.ws_auth_timeout_s)
    except WebSocketDisconnect:
        return
    if token is None:
        await ws.close(CLOSE_BAD_TOKEN, "no token: connect with ?token=... or send "
                                        '{"token": "..."} first')
        return
    session = ctx.tokens.lookup(token, ctx.clock())
    if session is None:
        await ws.close(CLOSE_BAD_TOKEN, "the token is unknown or expired: sign in again")
        return
    if not may_act_for(session, agent_id):
        await ws.close(CLOSE_FORBIDDEN, f"agent {session.agent_id} may not follow agent "
                                        f"{agent_id}"[:120])
        return
    queue = ctx.desk.subscribe(agent_id)
    stream = ctx.streams.open(token)
    try:
        await ws.send_json({"event": "hello", "at": ctx.clock(),
                            "agent": ctx.desk.agent(agent_id)})
        code, reason = await _pump(ws, queue, stream,
                                   ttl_s=session.expires_at - ctx.clock())
        if code is not None:
            await ws.close(code, reason)
    except WebSocketDisconnect:
        pass
    finally:
        ctx.streams.close(token, stream)
        ctx.desk.unsubscribe(agent_id, queue)


async def _pump(ws: WebSocket, queue: asyncio.Queue[dict[str, Any]], stream: _Stream,
                ttl_s: float) -> tuple[int | None, str]:
    """Forward events until the client leaves (None), or the token ends (code, reason)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(ttl_s, 0.0)
    get: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(queue.get())
    recv: asyncio.Task[Any] = asyncio.ensure_future(ws.receive())
    stop: asyncio.Task[Any] = asyncio.ensure_future(stream.stop.wait())
    try:
        while True:
            done, _ = await asyncio.wait({get, recv, stop}, timeout=deadline - loop.time(),
                                         return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                return stream.code, stream.reason
            if not done:
                return CLOSE_BAD_TOKEN, "the token expired: sign in again"
            if recv in done:
                if recv.result().get("type") == "websocket.disconnect":
                    return None, ""
                recv = asyncio.ensure_future(ws.receive())  # anything else: ignored
            if get in done:
                await ws.send_json(get.result())
                get = asyncio.ensure_future(queue.get())
    finally:
        for task in (get, recv, stop):
            task.cancel()
        await asyncio.gather(get, recv, stop, return_exceptions=True)
