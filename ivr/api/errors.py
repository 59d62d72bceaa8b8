"""Errors of the agent API: every one is JSON ``{"error": {"status", "message"}}``.

Exceptions seen at the boundary and what the client gets::

    ApiError(status, message)      raised by our routes (401, 403, 404, 413, 422)
    ivr.desk.DeskError             its .status (404, 409, 422) and its message
    starlette HTTPException        the router's 404 (no such path) and 405 (+ Allow)
    anything else                  500 "internal error", logged with its traceback here;
                                   the client never sees a traceback
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..desk import DeskError

log = logging.getLogger("ivr.api")

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """A request refused by the API itself; ``message`` is for the agent to read."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, message: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}},
                        status_code=status, headers=dict(headers or {}))


def guarded(endpoint: Endpoint) -> Endpoint:
    """Wrap a route so that whatever it raises becomes a JSON error (never a traceback)."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except DeskError as exc:
            status = exc.status if 400 <= exc.status <= 599 else 500
            return error_response(status, str(exc))
        except Exception:
            log.exception("agent API: %s %s failed", request.method, request.url.path)
            return error_response(500, "internal error: the request failed on the server "
                                       "(logged there); try again or tell the ops staff")

    return run


async def http_exception(request: Request, exc: Exception) -> Response:
    """The router's own refusals (no such path, method not allowed) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.url.path} (see /openapi.json)"
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}" + (
            f" (allowed: {allow})" if allow else "")
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("agent API: %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error: the request failed on the server (logged "
                               "there)")
