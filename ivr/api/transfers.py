"""The agent API's transfer routes: blind transfer, consult, complete, cancel, conference
on the signed-in agent's own call (``/api/v1/agents/{agent_id}/call/...``).

202 with ``{"call_id", "to"}`` when started (the phones' legs follow: the agent's
WebSocket says ``transferred`` / ``consult``); 409 when the agent has no call or the call
is not in a state for it (e.g. complete before the consulted agent answered); 422 when the
target is refused (unknown agent, queue or node, agent not ready, number not allowed by
the dial plan), the message saying why. Nothing is changed by a refused request.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .app import _ctx, _own_agent
from .bodies import _Body, read_body
from .errors import guarded


class TransferTo(_Body):
    to: str = Field(min_length=3, max_length=200, pattern=r"^(agent|queue|flow|tel):.+$")


async def _request(request: Request, what: str, with_target: bool) -> Response:
    _, agent_id = _own_agent(request)
    to = (await read_body(request, TransferTo)).to if with_target else ""
    result = _ctx(request).desk.transfer_request(agent_id, what, to)
    return JSONResponse(result, status_code=202)


@guarded
async def post_transfer(request: Request) -> Response:
    return await _request(request, "transfer", True)


@guarded
async def post_consult(request: Request) -> Response:
    return await _request(request, "consult", True)


@guarded
async def post_complete(request: Request) -> Response:
    return await _request(request, "complete", False)


@guarded
async def post_cancel(request: Request) -> Response:
    return await _request(request, "cancel", False)


@guarded
async def post_conference(request: Request) -> Response:
    return await _request(request, "conference", False)


def routes(prefix: str) -> list[BaseRoute]:
    call = f"{prefix}/agents/{{agent_id}}/call"
    return [
        Route(f"{call}/transfer", post_transfer, methods=["POST"]),
        Route(f"{call}/consult", post_consult, methods=["POST"]),
        Route(f"{call}/consult/complete", post_complete, methods=["POST"]),
        Route(f"{call}/consult/cancel", post_cancel, methods=["POST"]),
        Route(f"{call}/conference", post_conference, methods=["POST"]),
    ]


def openapi_paths(op: Any, json: Any, agent_param: dict[str, Any]) -> dict[str, Any]:
    """Their OpenAPI paths (``op`` and ``json`` are openapi.py's builders)."""
    started = {"202": json("TransferStarted", "started; the legs follow")}

    def post(summary: str, body: str | None) -> dict[str, Any]:
        errors = (401, 403, 404, 409, 413, 422) if body else (401, 403, 404, 409)
        return {"post": op(summary, started, *errors, body=body, params=[agent_param])}

    call = "/api/v1/agents/{agent_id}/call"
    return {
        f"{call}/transfer": post(
            "Blind transfer of the agent's call to agent:ID, queue:NAME, flow:NODE or "
            "tel:NUMBER (allowed by the dial plan); the agent leaves at once (wrap-up)",
            "TransferTo"),
        f"{call}/consult": post(
            "Consult: hold the caller (music) and ring agent:ID or a ready agent of "
            "queue:NAME", "TransferTo"),
        f"{call}/consult/complete": post(
            "Complete the consult: the consulted agent gets the caller, this agent leaves",
            None),
        f"{call}/consult/cancel": post(
            "Cancel the consult: back to the caller", None),
        f"{call}/conference": post(
            "Three-way call of the caller and both agents (after the consulted agent "
            "answered)", None),
    }


SCHEMAS: dict[str, Any] = {
    "TransferTo": {"type": "object", "required": ["to"], "additionalProperties": False,
                   "properties": {"to": {"type": "string", "maxLength": 200,
                                         "pattern": "^(agent|queue|flow|tel):.+$",
                                         "examples": ["agent:1002", "queue:billing",
                                                      "flow:survey", "tel:+4930123456"]}}},
    "TransferStarted": {"type": "object", "required": ["call_id"], "properties": {
        "call_id": {"type": "string"}, "to": {"type": "string"}}},
}
