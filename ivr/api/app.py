"""The agent API's routes (``/api/v1``), built around an :class:`ivr.desk.AgentDesk`.

``make_app(desk)`` returns the ASGI app; :class:`ivr.api.server.ApiServer` serves it in the
controller's loop. Every route but sign-in needs ``Authorization: Bearer <token>``; an
agent's token opens only that agent's ``/agents/{id}`` paths (403 otherwise, nothing done).
The routes only translate HTTP to the desk and back; the desk decides. docs/api.md says
what each one does, ``openapi.py`` describes them for machines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from ..desk import AgentDesk
from . import events
from .auth import Session, TokenStore, bearer_token, may_act_for
from .bodies import SignIn, StateChange, WrapUp, read_body
from .errors import ApiError, guarded, http_exception, server_error
from .openapi import openapi_spec

log = logging.getLogger("ivr.api")

PREFIX = "/api/v1"
DEFAULT_TOKEN_TTL_S = 12 * 3600.0


@dataclass
class ApiContext:
    """What the routes share: the desk, the live tokens, the clock, the open event streams."""

    desk: AgentDesk
    tokens: TokenStore
    clock: Callable[[], float]
    streams: events.EventStreams = field(default_factory=lambda: events.EventStreams())
    ws_auth_timeout_s: float = 10.0


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _session(request: Request) -> Session:
    token = bearer_token(request.headers.get("authorization"))
    challenge = {"WWW-Authenticate": 'Bearer realm="ivr"'}
    if token is None:
        raise ApiError(401, "sign in first: POST /api/v1/sessions, then send "
                            "'Authorization: Bearer <token>'", challenge)
    ctx = _ctx(request)
    session = ctx.tokens.lookup(token, ctx.clock())
    if session is None:
        raise ApiError(401, "the token is unknown or expired (or signed out): sign in again",
                       challenge)
    return session


def _own_agent(request: Request) -> tuple[Session, str]:
    session = _session(request)
    agent_id = request.path_params["agent_id"]
    if not may_act_for(session, agent_id):
        raise ApiError(403, f"agent {session.agent_id} may not act for agent {agent_id}")
    return session, agent_id


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


@guarded
async def sign_in(request: Request) -> Response:
    ctx = _ctx(request)
    body = await read_body(request, SignIn)
    client = request.client.host if request.client else "?"
    if not ctx.desk.verify_password(body.agent_id, body.password):
        log.warning("agent API: sign-in refused for agent %r from %s (wrong id or password)",
                    body.agent_id, client)
        raise ApiError(401, "wrong agent id or password")
    agent = ctx.desk.agent(body.agent_id)
    if agent is None:  # the password matched an agent the desk no longer has
        log.warning("agent API: sign-in refused for agent %r from %s (no such agent)",
                    body.agent_id, client)
        raise ApiError(401, "wrong agent id or password")
    session = ctx.tokens.issue(body.agent_id, ctx.clock())
    log.info("agent API: agent %s signed in from %s", body.agent_id, client)
    return _json({"token": session.token, "token_type": "Bearer",
                  "role": session.role.value, "expires_at": session.expires_at,
                  "agent": agent}, 201)


@guarded
async def sign_out(request: Request) -> Response:
    ctx = _ctx(request)
    session = _session(request)
    # the desk first: if it refuses, the token stays and the agent can try again
    ctx.desk.set_state(session.agent_id, "logged_out")
    ctx.tokens.revoke(session.token)
    await ctx.streams.close_token(session.token, events.CLOSE_SIGNED_OUT, "signed out")
    log.info("agent API: agent %s signed out", session.agent_id)
    return Response(status_code=204)


@guarded
async def get_agent(request: Request) -> Response:
    _, agent_id = _own_agent(request)
    agent = _ctx(request).desk.agent(agent_id)
    if agent is None:
        raise ApiError(404, f"no agent {agent_id}")
    return _json(agent)


@guarded
async def put_state(request: Request) -> Response:
    _, agent_id = _own_agent(request)
    body = await read_body(request, StateChange)
    return _json(_ctx(request).desk.set_state(agent_id, body.state, body.reason))


@guarded
async def post_wrapup(request: Request) -> Response:
    _, agent_id = _own_agent(request)
    body = await read_body(request, WrapUp)
    return _json(_ctx(request).desk.wrapup(agent_id, body.code, body.note, body.call_id))


@guarded
async def get_current_call(request: Request) -> Response:
    _, agent_id = _own_agent(request)
    call = _ctx(request).desk.current_call(agent_id)
    return Response(status_code=204) if call is None else _json(call)


@guarded
async def get_call(request: Request) -> Response:
    session = _session(request)
    call_id = request.path_params["call_id"]
    call = _ctx(request).desk.call_for(session.agent_id, call_id)
    if call is None:  # the same answer whether the call is someone else's or unknown
        raise ApiError(404, f"no call {call_id} of agent {session.agent_id}")
    return _json(call)


@guarded
async def get_figures(request: Request) -> Response:
    _, agent_id = _own_agent(request)
    return _json(_ctx(request).desk.figures_today(agent_id))


@guarded
async def get_reason_codes(request: Request) -> Response:
    _session(request)
    search = request.query_params.get("search", "")
    if len(search) > 128:
        raise ApiError(422, "search: at most 128 characters")
    return _json({"reason_codes": _ctx(request).desk.reason_codes(search)})


@guarded
async def get_not_ready_reasons(request: Request) -> Response:
    _session(request)
    return _json({"reasons": _ctx(request).desk.not_ready_reasons()})


@guarded
async def get_queue_script(request: Request) -> Response:
    _session(request)
    language = request.query_params.get("language", "")
    if len(language) > 32:
        raise ApiError(422, "language: at most 32 characters")
    return _json(_ctx(request).desk.queue_script(request.path_params["queue"], language))


async def get_openapi(request: Request) -> Response:
    return _json(request.app.state.openapi)


def routes() -> list[BaseRoute]:
    from . import supervision, transfers

    p = PREFIX
    return [
        *transfers.routes(p),
        *supervision.routes(p),
        Route(f"{p}/sessions", sign_in, methods=["POST"]),
        Route(f"{p}/sessions/current", sign_out, methods=["DELETE"]),
        Route(f"{p}/agents/{{agent_id}}", get_agent, methods=["GET"]),
        Route(f"{p}/agents/{{agent_id}}/state", put_state, methods=["PUT"]),
        Route(f"{p}/agents/{{agent_id}}/wrapup", post_wrapup, methods=["POST"]),
        Route(f"{p}/agents/{{agent_id}}/call", get_current_call, methods=["GET"]),
        Route(f"{p}/agents/{{agent_id}}/figures", get_figures, methods=["GET"]),
        Route(f"{p}/calls/{{call_id}}", get_call, methods=["GET"]),
        Route(f"{p}/reason-codes", get_reason_codes, methods=["GET"]),
        Route(f"{p}/not-ready-reasons", get_not_ready_reasons, methods=["GET"]),
        Route(f"{p}/queues/{{queue}}/script", get_queue_script, methods=["GET"]),
        WebSocketRoute(f"{p}/agents/{{agent_id}}/events", events.agent_events),
        Route("/openapi.json", get_openapi, methods=["GET"]),
    ]


def make_app(desk: AgentDesk, *, token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
             clock: Callable[[], float] = time.time,
             ws_auth_timeout_s: float = 10.0) -> Starlette:
    """The agent API over ``desk``. ``clock`` gives Unix seconds (token expiry);
    ``ws_auth_timeout_s``: how long a WebSocket without ``?token=`` may take to send it."""
    app = Starlette(routes=routes(), exception_handlers={
        HTTPException: http_exception, Exception: server_error})
    app.state.ctx = ApiContext(desk=desk, tokens=TokenStore(token_ttl_s), clock=clock,
                               ws_auth_timeout_s=ws_auth_timeout_s)
    app.state.openapi = openapi_spec()
    return app
