"""Outbound legs: what goes on an INVITE we place, checked before PJSIP sees it.

A worker calls an agent with the caller's context in headers (``X-Queue``, ``X-Wait-S``,
``X-IVR-*``, ``Call-Info``). Header names must be RFC 3261 tokens, values a single line;
headers PJSIP builds itself cannot be set this way.
"""

from __future__ import annotations

import re

# RFC 3261 section 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`"
# / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Headers of the dialog and transaction: PJSIP writes them, a second copy breaks the request.
RESERVED_HEADERS = frozenset({
    "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "contact", "m",
    "content-length", "l", "content-type", "c", "max-forwards", "route", "record-route",
})
_SIP_URI = re.compile(r"sips?:[^\s<>]+\Z")


def check_target(uri: str) -> str:
    """The target of an outbound call: a SIP URI (``sip:agent7@example.com``)."""
    if not _SIP_URI.match(uri):
        raise ValueError(f"an outbound call needs a sip: or sips: URI, not {uri!r}")
    return uri


def check_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """The headers to add to an INVITE, in order; a clear ValueError on the first bad one
    (nothing is sent then)."""
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not a SIP token (RFC 3261 section 25.1)")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is written by PJSIP and cannot be set")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"header {name!r}: the value must be one line, got {value!r}")
        checked.append((name, value.strip()))
    return checked
