"""Request bodies of the agent API, checked at the door: a bad one is a 422 naming the field.

Each body is a pydantic model (no extra fields); :func:`read_body` parses the request's JSON
into one or raises :class:`ApiError` saying what was wrong, where.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

from .errors import ApiError

MAX_BODY_BYTES = 64 * 1024
STATES = ("ready", "not_ready", "logged_out")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no stripping: a password keeps its spaces


class SignIn(_Body):
    agent_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)

    @field_validator("agent_id")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


class StateChange(_Body):
    state: Literal["ready", "not_ready", "not-ready", "logged_out", "logged-out"]
    reason: str = Field(default="", max_length=64)

    @field_validator("state")
    @classmethod
    def _underscores(cls, v: str) -> str:
        return v.replace("-", "_")


class WrapUp(_Body):
    code: str = Field(min_length=1, max_length=128)
    note: str = Field(default="", max_length=2000)
    # the call the code is for (optional): a wrap-up sent late, after a reconnect, must not
    # code a later call
    call_id: str = Field(default="", max_length=128)


B = TypeVar("B", bound=_Body)


async def read_body(request: Request, model: type[B]) -> B:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is {length} bytes: at most {MAX_BODY_BYTES}")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is {len(raw)} bytes: at most {MAX_BODY_BYTES}")
    fields = ", ".join(model.model_fields)
    if not raw.strip():
        raise ApiError(422, f"the request needs a JSON object body with: {fields}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, f"the request body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"the request body must be a JSON object with: {fields}, "
                            f"not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "; ".join(_problem(err, fields) for err in exc.errors())) from None


def _problem(err: object, fields: str) -> str:
    assert isinstance(err, dict)
    name = ".".join(str(p) for p in err.get("loc", ())) or "body"
    kind = err.get("type", "")
    if kind == "missing":
        return f"{name}: missing (the body needs: {fields})"
    if kind == "extra_forbidden":
        return f"{name}: not a field of this request (fields: {fields})"
    return f"{name}: {err.get('msg', 'invalid')}"
