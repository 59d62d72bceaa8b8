"""The OpenAPI 3.1 description of the agent API, written by hand next to the routes.

``tests/test_api.py`` checks that every route of ``app.routes()`` is here and every path
here is a route, method for method. The WebSocket is described as the GET that upgrades
(``x-websocket: true``), its messages in the description (docs/api.md has them in full).
"""

from __future__ import annotations

from typing import Any

from .bodies import STATES

_ref = "#/components/schemas/"


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": _ref + name}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _schema(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {401: "no token, or an unknown/expired one", 403: "another agent's resource",
            404: "not found", 409: "not possible in the agent's current state",
            413: "body too large", 422: "bad body or field (the message names it)"}
    return {str(s): _json("Error", text[s]) for s in statuses}


_AGENT_ID = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "the agent's id; must be the signed-in agent's own"}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _op(summary: str, ok: dict[str, Any], *errors: int, body: str | None = None,
        params: list[dict[str, Any]] | None = None, secured: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _schema(body)}}}
    op["security"] = _BEARER if secured else []
    return op


_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/sessions": {"post": _op(
        "Sign in with the agent id and SIP password; get a bearer token",
        {"201": _json("Session", "signed in")}, 401, 413, 422, body="SignIn", secured=False)},
    "/api/v1/sessions/current": {"delete": _op(
        "Sign out: the token is dropped and the agent set logged_out",
        {"204": {"description": "signed out"}}, 401, 409)},
    "/api/v1/agents/{agent_id}": {"get": _op(
        "The agent's view: state, reason, since, queues, current call",
        {"200": _json("Agent", "the agent")}, 401, 403, 404, params=[_AGENT_ID])},
    "/api/v1/agents/{agent_id}/state": {"put": _op(
        "Change state (ready, not_ready with a reason, logged_out); on a call it applies "
        "at the end of the call",
        {"200": _json("Agent", "the agent after the change")}, 401, 403, 404, 409, 413, 422,
        body="StateChange", params=[_AGENT_ID])},
    "/api/v1/agents/{agent_id}/wrapup": {"post": _op(
        "Report the disposition (reason code) of the last call, with a note",
        {"200": _json("Agent", "the agent after the wrap-up")}, 401, 403, 404, 409, 413, 422,
        body="WrapUp", params=[_AGENT_ID])},
    "/api/v1/agents/{agent_id}/call": {"get": _op(
        "The agent's current call with the caller data from the IVR",
        {"200": _json("Call", "the current call"), "204": {"description": "no call now"}},
        401, 403, params=[_AGENT_ID])},
    "/api/v1/agents/{agent_id}/figures": {"get": _op(
        "The agent's own figures for today",
        {"200": _json("Figures", "today's figures")}, 401, 403, 404, params=[_AGENT_ID])},
    "/api/v1/agents/{agent_id}/events": {"get": {
        **_op("WebSocket of the agent's events (?token= or a first {\"token\"} message); "
              "sends hello, then state, offered, connected, held, resumed, ended. Closes "
              "4401 bad token, 4403 another agent",
              {"101": {"description": "switched to the WebSocket protocol"}},
              params=[_AGENT_ID, {"name": "token", "in": "query", "required": False,
                                  "schema": {"type": "string"}}], secured=False),
        "x-websocket": True}},
    "/api/v1/calls/{call_id}": {"get": _op(
        "A call of the signed-in agent (the id of the phone's Call-Info header)",
        {"200": _json("Call", "the call")}, 401, 404,
        params=[{"name": "call_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}])},
    "/api/v1/reason-codes": {"get": _op(
        "Disposition codes of the call-reason tree, filtered by search",
        {"200": {"description": "matching codes", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"reason_codes": {
                "type": "array", "items": _schema("ReasonCode")}}}}}}}, 401, 422,
        params=[{"name": "search", "in": "query", "required": False,
                 "schema": {"type": "string", "maxLength": 128}}])},
    "/api/v1/not-ready-reasons": {"get": _op(
        "The reasons an agent may give for not_ready",
        {"200": {"description": "the reasons", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"reasons": {
                "type": "array", "items": {"type": "string"}}}}}}}}, 401)},
    "/api/v1/queues/{queue}/script": {"get": _op(
        "The queue's guided script in a language (or the nearest written), and the "
        "phrases to flag in notes",
        {"200": _json("Script", "the steps")}, 401, 404, 422, params=[
            {"name": "queue", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "language", "in": "query", "required": False,
             "schema": {"type": "string", "maxLength": 32}}])},
    "/openapi.json": {"get": _op(
        "This description", {"200": {"description": "OpenAPI 3.1 JSON"}}, secured=False)},
}

_STR = {"type": "string"}
_NUM = {"type": "number"}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["status", "message"],
        "properties": {"status": {"type": "integer"}, "message": _STR}}}},
    "SignIn": {"type": "object", "required": ["agent_id", "password"],
               "additionalProperties": False,
               "properties": {"agent_id": {"type": "string", "maxLength": 64},
                              "password": {"type": "string", "maxLength": 256}}},
    "Session": {"type": "object", "required": ["token", "agent"], "properties": {
        "token": _STR, "token_type": {"const": "Bearer"},
        "role": {"enum": ["agent", "supervisor"]}, "expires_at": _NUM,
        "agent": _schema("Agent")}},
    "StateChange": {"type": "object", "required": ["state"], "additionalProperties": False,
                    "properties": {
                        "state": {"enum": [*STATES, "not-ready", "logged-out"]},
                        "reason": {"type": "string", "maxLength": 64}}},
    "WrapUp": {"type": "object", "required": ["code"], "additionalProperties": False,
               "properties": {"code": {"type": "string", "maxLength": 128},
                              "note": {"type": "string", "maxLength": 2000},
                              "call_id": {"type": "string", "maxLength": 128}}},
    "Agent": {"type": "object", "properties": {
        "id": _STR, "name": _STR, "state": _STR, "reason": _STR,
        "since": {"type": ["number", "null"]},  # null: not signed in since the stack started
        "queues": {"type": "object", "additionalProperties": {"type": "integer"}},
        "call": {"oneOf": [_schema("Call"), {"type": "null"}]}}},
    "Call": {"type": "object", "properties": {
        "call_id": _STR, "queue": _STR,
        "state": {"enum": ["ringing", "connected", "held", "wrap_up", "ended"]},
        "caller": _STR, "caller_name": _STR, "wait_s": _NUM, "since": _NUM,
        "data": {"type": "object", "additionalProperties": True}}},
    "Script": {"type": "object", "properties": {
        "queue": _STR, "language": _STR, "steps": {"type": "array", "items": _STR},
        "banned_phrases": {"type": "array", "items": _STR}}},
    "Figures": {"type": "object", "additionalProperties": True, "properties": {
        "calls_handled": {"type": "integer"}, "talk_time_s": _NUM, "aht_s": _NUM,
        "hold_time_s": _NUM, "missed": {"type": "integer"}, "not_ready_s": _NUM}},
    "ReasonCode": {"type": "object", "required": ["code", "label"],
                   "properties": {"code": _STR, "label": _STR}},
}


def openapi_spec() -> dict[str, Any]:
    from . import supervision, transfers

    paths = {**_PATHS, **transfers.openapi_paths(_op, _json, _AGENT_ID),
             **supervision.openapi_paths(_op, _json)}
    schemas = {**_SCHEMAS, **transfers.SCHEMAS, **supervision.SCHEMAS}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contact-center agent API", "version": "1",
                 "description": "Agents sign in, change state, wrap up calls and follow "
                                "their events. Errors are {\"error\": {\"status\", "
                                "\"message\"}}. See docs/api.md."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }
