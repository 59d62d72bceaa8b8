"""PJSIP's log under hostile input: one short line per rejected message, rate-limited per
source (media/pjlog.py), and the worker still takes calls."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from media.pjlog import LINE_MAX_CHARS, PER_SOURCE_PER_S, TOTAL_PER_S, LogLimiter, summarize
from tests import sipp
from tests.conftest import WorkerProcess
from tests.test_calls_sipp import wait_ended

REJECTED = ("Error processing packet from 127.0.0.1:16990: Missing required header(s) From "
            "To CSeq [code 171141]:\nINVITE sip:ivr@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP x\n"
            "\n-- end of packet.")


def test_a_rejected_packet_is_logged_as_its_first_line_with_its_source() -> None:
    line, source = summarize(REJECTED)
    assert line == ("Error processing packet from 127.0.0.1:16990: Missing required header(s)"
                    " From To CSeq [code 171141]: [...]")
    assert source == "127.0.0.1"
    assert summarize("Dropping 30 bytes packet from UDP [::1]:5070 : syntax error")[1] == "::1"
    assert summarize("Bad RTP pt 99 (expecting 0)") == ("Bad RTP pt 99 (expecting 0)", "-")
    long_line, _ = summarize("x" * 5000)
    assert len(long_line) <= LINE_MAX_CHARS + len(" [...]")


def test_the_limiter_admits_a_few_lines_per_source_per_second_and_counts_the_rest() -> None:
    limiter = LogLimiter()
    admitted = [limiter.admit("10.0.0.1", now=100.0 + i / 1000)[0] for i in range(200)]
    assert sum(admitted) == PER_SOURCE_PER_S
    assert limiter.admit("10.0.0.2", now=100.3) == (True, 0)  # another source has its own
    assert limiter.admit("10.0.0.1", now=101.0) == (True, 200 - PER_SOURCE_PER_S)


def test_many_sources_together_stay_under_the_overall_limit() -> None:
    limiter = LogLimiter()
    admitted = [limiter.admit(f"10.0.{i // 250}.{i % 250}", now=5.0)[0] for i in range(1000)]
    assert sum(admitted) == TOTAL_PER_S


def _garbage(n: int, port: int) -> list[bytes]:
    """Requests PJSIP parses but rejects (no From/To/CSeq), and unparsable bytes."""
    out = []
    for i in range(n):
        if i % 2:
            out.append((f"INVITE sip:ivr@127.0.0.1:{port} SIP/2.0\r\n"
                        f"Via: SIP/2.0/UDP 127.0.0.1:16990;branch=z9hG4bK{i}\r\n"
                        f"Call-ID: junk{i}\r\n" + "X-Padding: " + "A" * 900 + "\r\n"
                        "Content-Length: 0\r\n\r\n").encode())
        else:
            out.append(b"\x16\x03\x01 not SIP at all " + bytes(range(256)) * 3)
    return out


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
def test_a_burst_of_malformed_sip_adds_a_bounded_number_of_short_lines(
        worker: WorkerProcess, tmp_path: Path) -> None:
    before = len(worker.lines)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 16990))
        started = time.monotonic()
        for datagram in _garbage(200, worker.port):
            s.sendto(datagram, ("127.0.0.1", worker.port))
        sent_s = time.monotonic() - started
    # The worker still answers a normal call (which also shows the garbage was read).
    caller = sipp.Caller("after_garbage").pause(300).caller_hangs_up()
    result = sipp.run(caller, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    assert wait_ended(worker.db)["end_reason"] == "caller_hangup"
    pjsip = [line for line in worker.lines[before:] if "pjsip:" in line]
    assert pjsip, "PJSIP logged nothing about 200 malformed messages"
    # At most PER_SOURCE_PER_S lines a second from the one source while it sent (+1 window).
    assert len(pjsip) <= PER_SOURCE_PER_S * (int(sent_s) + 2), pjsip
    assert all(len(line) < LINE_MAX_CHARS + 200 for line in pjsip), pjsip  # + JSON framing
    assert all("127.0.0.1" in line for line in pjsip), pjsip
