"""The agent API's supervision routes: ``/api/v1/calls/{call_id}/supervise``. POST
``{"mode": "listen" | "whisper" | "barge", "phone": "<id>"}`` rings the supervisor's phone
(default: the signed-in supervisor's own) and joins it to the call; PUT ``{"mode"}``
switches the mode on the same leg; DELETE ends it. Only agents named in the ACD file's
``supervision.supervisors`` may (403 otherwise); 404 no such call in the ACD; 409 no agent
on the call yet, already supervised, or not supervised; 422 a bad mode or phone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .app import _ctx, _session
from .bodies import _Body, read_body
from .errors import guarded


class SuperviseStart(_Body):
    mode: Literal["listen", "whisper", "barge"]
    phone: str = Field(default="", max_length=64)


class SuperviseMode(_Body):
    mode: Literal["listen", "whisper", "barge"]


@guarded
async def supervise(request: Request) -> Response:
    session = _session(request)
    call_id = request.path_params["call_id"]
    desk = _ctx(request).desk
    if request.method == "POST":
        start = await read_body(request, SuperviseStart)
        out = desk.supervise(session.agent_id, call_id, start.mode, start.phone, "start")
        return JSONResponse(out, status_code=202)
    if request.method == "PUT":
        body = await read_body(request, SuperviseMode)
        return JSONResponse(desk.supervise(session.agent_id, call_id, body.mode, "", "switch"))
    return JSONResponse(desk.supervise(session.agent_id, call_id, "", "", "end"))


def routes(prefix: str) -> list[BaseRoute]:
    return [Route(f"{prefix}/calls/{{call_id}}/supervise", supervise,
                  methods=["POST", "PUT", "DELETE"])]


def openapi_paths(op: Any, json: Any) -> dict[str, Any]:
    param = [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    view = json("Supervision", "the supervision")
    return {"/api/v1/calls/{call_id}/supervise": {
        "post": op("Supervise the call: ring the supervisor's phone and join it (listen, "
                   "whisper: the agent hears the supervisor, barge: both do)",
                   {"202": json("Supervision", "the phone is being rung")},
                   401, 403, 404, 409, 413, 422, body="SuperviseStart", params=param),
        "put": op("Switch the supervision's mode on the same leg", {"200": view},
                  401, 403, 404, 409, 413, 422, body="SuperviseMode", params=param),
        "delete": op("End the supervision (the supervisor's leg is hung up)",
                     {"200": view}, 401, 403, 404, 409, params=param),
    }}


_MODE = {"enum": ["listen", "whisper", "barge"]}
SCHEMAS: dict[str, Any] = {
    "SuperviseStart": {"type": "object", "required": ["mode"], "additionalProperties": False,
                       "properties": {"mode": _MODE, "phone": {"type": "string",
                                                               "maxLength": 64}}},
    "SuperviseMode": {"type": "object", "required": ["mode"], "additionalProperties": False,
                      "properties": {"mode": _MODE}},
    "Supervision": {"type": "object", "properties": {
        "call_id": {"type": "string"}, "mode": {"type": "string"},
        "phone": {"type": "string"}, "agent_id": {"type": "string"}}},
}
