"""A minimal SIP UAC over one UDP socket, for tests that need two requests sent back to back
(sipp cannot place one call's BYE and the next call's INVITE microseconds apart).

It speaks just enough of RFC 3261 for an audio call against a UAS on loopback: INVITE with
a PCMU offer, ACK, BYE. Every wait is bounded.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: str

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def cseq_method(self) -> str:
        return self.headers.get("cseq", " ").split()[-1]


def parse_response(data: bytes) -> Response | None:
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ", lines[0])
    if m is None:
        return None  # a request (OPTIONS, BYE from the far end) or a keep-alive
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return Response(int(m.group(1)), headers, text)


@dataclass
class Dialog:
    call_id: str
    from_tag: str
    rtp_port: int
    to_header: str = ""  # with the UAS's tag, once a response carried it
    remote_target: str = ""
    cseq: int = 1


@dataclass
class RawUac:
    """One UDP socket on 127.0.0.1 that places calls to ``target`` (host:port)."""

    target: str
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def _via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport"

    def invite(self, rtp_port: int) -> tuple[Dialog, bytes]:
        """A new dialog and its INVITE (not sent: see :meth:`send`)."""
        dialog = Dialog(f"{secrets.token_hex(8)}@raw-uac", secrets.token_hex(4), rtp_port)
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n")
        msg = (f"INVITE sip:ivr@{self.target} SIP/2.0\r\nVia: {self._via()}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:raw@127.0.0.1>;tag={dialog.from_tag}\r\n"
               f"To: <sip:ivr@{self.target}>\r\nCall-ID: {dialog.call_id}\r\n"
               f"CSeq: 1 INVITE\r\nContact: <sip:raw@127.0.0.1:{self.port}>\r\n"
               f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        return dialog, msg.encode()

    def _in_dialog(self, dialog: Dialog, method: str, cseq: int) -> bytes:
        uri = dialog.remote_target or f"sip:ivr@{self.target}"
        return (f"{method} {uri} SIP/2.0\r\nVia: {self._via()}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:raw@127.0.0.1>;tag={dialog.from_tag}\r\nTo: {dialog.to_header}\r\n"
                f"Call-ID: {dialog.call_id}\r\nCSeq: {cseq} {method}\r\n"
                "Content-Length: 0\r\n\r\n").encode()

    def ack(self, dialog: Dialog) -> bytes:
        return self._in_dialog(dialog, "ACK", 1)

    def bye(self, dialog: Dialog) -> bytes:
        dialog.cseq += 1
        return self._in_dialog(dialog, "BYE", dialog.cseq)

    def send(self, *messages: bytes) -> None:
        """Send the messages back to back (one sendto each, nothing in between)."""
        host, port = self.target.rsplit(":", 1)
        for msg in messages:
            self.sock.sendto(msg, (host, int(port)))

    def final_response(self, dialog: Dialog, method: str, timeout_s: float = 10.0) -> Response:
        """Wait for the final response to ``method`` in ``dialog``; remembers the UAS's tag
        and Contact. Responses of other dialogs are kept for later calls."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, r in enumerate(self._pending):
                if r.call_id == dialog.call_id and r.cseq_method == method:
                    del self._pending[i]
                    return self._learn(dialog, r)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no final response to {method} of {dialog.call_id}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            r = parse_response(data)
            if r is not None and r.status >= 200:
                self._pending.append(r)

    def _learn(self, dialog: Dialog, r: Response) -> Response:
        if "tag=" in r.headers.get("to", ""):
            dialog.to_header = r.headers["to"]
        contact = re.search(r"<([^>]+)>", r.headers.get("contact", ""))
        if contact:
            dialog.remote_target = contact.group(1)
        return r

    @property
    def _pending(self) -> list[Response]:
        if not hasattr(self, "_pending_list"):
            self._pending_list: list[Response] = []
        return self._pending_list
