"""Calls a flow makes to the outside world: HTTP data dips for the ``lookup`` node."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("ivr.services")

MAX_ANSWER_BYTES = 256 * 1024


async def http_lookup(url: str, method: str, body: dict[str, str],
                      timeout_s: float) -> tuple[bool, Any, str]:
    """GET or POST (JSON) ``url``; returns (ok, decoded JSON answer, error text)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            if method == "POST":
                response = await client.post(url, json=body)
            else:
                response = await client.get(url)
    except httpx.TimeoutException:
        return False, None, f"no answer within {timeout_s:.1f} s"
    except httpx.HTTPError as exc:
        return False, None, f"{type(exc).__name__}: {exc}"
    if response.status_code >= 400:
        return False, None, f"HTTP {response.status_code}"
    if len(response.content) > MAX_ANSWER_BYTES:
        return False, None, f"answer of {len(response.content)} bytes is too large"
    try:
        return True, response.json(), ""
    except ValueError:
        return False, None, "the answer is not JSON"
