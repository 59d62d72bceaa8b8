"""Checks on an incoming INVITE before a call is made of it: who sent it, and whether it is a
well-formed request (RFC 3261, RFC 4475). Pure functions over the source address and the
raw message text that PJSIP hands the incoming-call callback; no pjsua2 here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

_HEADER = re.compile(r"^([A-Za-z0-9!%*_+`'~.-]+)[ \t]*:[ \t]*(.*)$")


@dataclass(frozen=True)
class Source:
    """``host`` or ``host:port`` (``[v6]:port``): who may send SIP requests to a worker."""

    host: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int | None = None  # None: any port

    @classmethod
    def parse(cls, text: str) -> Source:
        """``"127.0.0.1"``, ``"127.0.0.1:5060"``, ``"::1"``, ``"[::1]:5060"``; ValueError
        naming the problem otherwise."""
        raw = text.strip()
        host, port = raw, None
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise ValueError(f"{text!r}: an IPv6 address in brackets lacks its ']'")
            host, rest = raw[1:end], raw[end + 1:]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{text!r}: expected ':port' after ']'")
                port = rest[1:]
        elif raw.count(":") == 1:
            host, port = raw.split(":")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address (host or host:port)") from None
        number: int | None = None
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
            number = int(port)
        return cls(addr, number)

    def matches(self, other: Source) -> bool:
        return self.host == other.host and (self.port is None or self.port == other.port)


def source_allowed(src_address: str, trusted: Iterable[Source]) -> bool:
    """Whether a request from ``src_address`` (PJSIP's ``"ip:port"``) may be served: with no
    trusted sources, anyone may; otherwise only those listed."""
    allowed = list(trusted)
    if not allowed:
        return True
    try:
        src = Source.parse(src_address)
    except ValueError:
        return False
    return any(t.matches(src) for t in allowed)


def invite_problem(whole_msg: str) -> str | None:
    """What makes this request unfit to be answered as an INVITE (a reason phrase for 400),
    or None. Checks what PJSIP lets through (RFC 4475 clerr, mismatch01): the CSeq method
    must be the request's method (RFC 3261 8.1.1.5), and a Content-Length larger than the
    body received (RFC 3261 18.3: over UDP such a message is broken; 400)."""
    head, sep, body = whole_msg.partition("\r\n\r\n")
    if not sep:
        head, sep, body = whole_msg.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    method = lines[0].split(" ", 1)[0] if lines else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        m = _HEADER.match(line)
        if m is not None:
            headers.setdefault(m.group(1).lower(), m.group(2).strip())
    cseq = headers.get("cseq", "").split()
    if len(cseq) != 2 or not cseq[0].isdigit():
        return "Bad CSeq"
    if cseq[1] != method:
        return f"CSeq method {cseq[1]} does not match the request method {method}"
    length = headers.get("content-length", headers.get("l"))
    if length is not None:
        if not length.isdigit():
            return "Bad Content-Length"
        if int(length) > len(body.encode("utf-8", "surrogateescape")):
            return "Content-Length larger than the message body"
    return None


class RefusalLog:
    """Rate limit for the log line of a refused request: at most one per ``interval_s``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._next_s = float("-inf")
        self._suppressed = 0

    def allow(self, now_s: float) -> int | None:
        """None: stay quiet (counted); else log now, saying how many were left out."""
        if now_s < self._next_s:
            self._suppressed += 1
            return None
        self._next_s = now_s + self.interval_s
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
