"""Render and run sipp caller scenarios (``tests/sipp/caller.xml.in``) against a worker, and
sipp as a called phone (:func:`uas`, scenarios ``tests/sipp/agent_*.xml``)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SIPP = shutil.which("sipp")
TEMPLATE = Path(__file__).parent / "sipp" / "caller.xml.in"
PCAP_DIR = Path("/usr/share/sip-tester")

_ports = itertools.count(0)
_uas_ports = itertools.count(0)

_IN_DIALOG_HEAD = """      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Test Caller" <sip:+15550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:+15550100@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70"""


@dataclass
class Caller:
    """A scripted caller. Build it with the methods, then :meth:`render` or :func:`run`."""

    name: str
    codecs: list[str] = field(default_factory=lambda: ["PCMU"])
    telephone_event: bool = True
    media_port: int | None = None  # put this port in the SDP instead of sipp's own
    description: str = ""  # the scenario's header comment (default: what it offers)
    _actions: list[str] = field(default_factory=list)
    _ending: str = ""
    _cseq: int = 1

    def pause(self, ms: int) -> Caller:
        self._actions.append(f'  <pause milliseconds="{ms}"/>')
        return self

    def play_pcap(self, path: Path) -> Caller:
        self._actions.append(
            f'  <nop><action><exec play_pcap_audio="{path}"/></action></nop>')
        return self

    def rfc2833(self, digit: str) -> Caller:
        name = {"*": "star", "#": "pound"}.get(digit, digit)
        return self.play_pcap(PCAP_DIR / f"dtmf_2833_{name}.pcap")

    def _request(self, method: str, extra: str = "", body: str = "") -> str:
        self._cseq += 1
        head = _IN_DIALOG_HEAD.format(method=method, cseq=self._cseq)
        lines = [head]
        if extra:
            lines.append(extra)
        lines.append("      Content-Length: [len]\n")
        if body:
            lines.append(body)
        body_text = "\n".join(lines)
        return f'  <send retrans="500">\n    <![CDATA[\n{body_text}\n    ]]>\n  </send>'

    def sip_info(self, digit: str, content_type: str = "application/dtmf-relay") -> Caller:
        if content_type == "application/dtmf-relay":
            body = f"      Signal={digit}\n      Duration=160"
        else:
            body = f"      {digit}"
        self._actions.append(self._request("INFO", f"      Content-Type: {content_type}", body))
        self._actions.append('  <recv response="200"/>')
        return self

    def refer(self, target: str, expect: int) -> Caller:
        """Ask the far end to transfer us (REFER); expect the final answer ``expect``."""
        extra = (f"      Refer-To: <{target}>\n"
                 "      Referred-By: <sip:+15550100@[local_ip]:[local_port]>")
        self._actions.append(self._request("REFER", extra))
        self._actions.append(f'  <recv response="{expect}"/>')
        return self

    def reinvite(self, media_port: int, direction: str = "sendrecv") -> Caller:
        """A re-INVITE offering PCMU (and telephone-event) on ``media_port`` with the SDP
        direction attribute ``direction`` (``inactive``: a hold); then the ACK."""
        sdp = "\n".join([
            "      v=0",
            "      o=caller 53655765 2353687638 IN IP[local_ip_type] [local_ip]",
            "      s=-",
            "      c=IN IP[media_ip_type] [media_ip]",
            "      t=0 0",
            f"      m=audio {media_port} RTP/AVP 0 101",
            "      a=rtpmap:0 PCMU/8000",
            "      a=rtpmap:101 telephone-event/8000",
            "      a=fmtp:101 0-15",
            "      a=ptime:20",
            f"      a={direction}",
        ])
        self._actions.append(self._request("INVITE", "      Content-Type: application/sdp", sdp))
        self._actions.append('  <recv response="100" optional="true"/>')
        self._actions.append('  <recv response="200"/>')
        ack = _IN_DIALOG_HEAD.format(method="ACK", cseq=self._cseq)
        self._actions.append(f"  <send>\n    <![CDATA[\n{ack}\n      Content-Length: 0\n\n"
                             "    ]]>\n  </send>")
        return self

    def caller_hangs_up(self) -> Caller:
        self._ending = self._request("BYE") + '\n  <recv response="200" crlf="true"/>'
        return self

    def ivr_hangs_up(self, within_ms: int = 30000) -> Caller:
        self._ending = f"""  <recv request="BYE" timeout="{within_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:+15550100@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>"""
        return self

    def render(self) -> str:
        pts = {"PCMU": 0, "PCMA": 8, "G722": 9}
        payloads = [str(pts[c]) for c in self.codecs]
        rtpmaps = [
            f"      a=rtpmap:{pts[c]} {c}/8000" for c in self.codecs
        ]
        if self.telephone_event:
            payloads.append("101")
            rtpmaps += ["      a=rtpmap:101 telephone-event/8000", "      a=fmtp:101 0-15"]
        rtpmaps.append("      a=ptime:20")
        text = TEMPLATE.read_text()
        description = self.description or f"A caller that offers {'/'.join(self.codecs)}."
        if "--" in description:
            raise ValueError("a scenario description cannot hold '--' (an XML comment)")
        description = textwrap.fill(description, 92, subsequent_indent="     ")
        return (text.replace("__DESCRIPTION__", description)
                .replace("__NAME__", self.name)
                .replace("__CODECS__", "/".join(self.codecs))
                .replace("__MEDIA_PORT__", str(self.media_port) if self.media_port
                         else "[media_port]")
                .replace("__PAYLOADS__", " ".join(payloads))
                .replace("__RTPMAPS__", "\n".join(rtpmaps))
                .replace("__ACTIONS__", "\n".join(self._actions))
                .replace("__ENDING__", self._ending))


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(caller: Caller | str, target: str, workdir: Path, *, calls: int = 1,
        concurrent: int = 1, timeout_s: int = 60, extra: list[str] | None = None,
        transport: str = "u1") -> SippResult:
    """Run sipp against ``target`` (host:port) with the scenario; bounded by -timeout."""
    assert SIPP, "sipp (Debian package sip-tester) is not installed"
    n = next(_ports)
    text = caller if isinstance(caller, str) else caller.render()
    name = caller.name if isinstance(caller, Caller) else f"scenario{n}"
    scenario = workdir / f"{name}.xml"
    scenario.write_text(text)
    local_port = 16000 + (n * 4) % 1000
    media_port = 26000 + (n * 4) % 2000
    err_file = workdir / f"{name}_errors.log"
    cmd = [
        SIPP, target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(local_port),
        "-mp", str(media_port), "-m", str(calls), "-l", str(concurrent), "-r", "50",
        "-timeout", f"{timeout_s}s", "-timeout_error", "-nostdin", "-trace_err",
        "-error_file", str(err_file), "-t", transport, "-max_recv_loops", "1000",
        *(extra or []),
    ]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          timeout=timeout_s + 15)
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    return SippResult(proc.returncode, proc.stdout[-4000:] + proc.stderr[-2000:], errors)


def _bound_elsewhere(port: int) -> bool:
    """Someone (the sipp just started) holds UDP ``port`` on loopback."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        probe.close()


@contextmanager
def uas(scenario: str, workdir: Path, media_port: int | None = None,
        timeout_s: int = 40) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """sipp as the called phone (UAS), one call; yields it and its ``sip:`` URI."""
    assert SIPP, "sipp (Debian package sip-tester) is not installed"
    n = next(_uas_ports)
    port = 17000 + (n * 4) % 900
    text = (TEMPLATE.parent / scenario).read_text()
    text = text.replace("__MEDIA_PORT__", str(media_port) if media_port else "[media_port]")
    path = workdir / f"uas{n}.xml"
    path.write_text(text)
    cmd = [SIPP, "-sf", str(path), "-i", "127.0.0.1", "-p", str(port),
           "-mp", str(28000 + (n * 4) % 900), "-m", "1", "-timeout", f"{timeout_s}s",
           "-timeout_error", "-nostdin", "-trace_err", "-error_file",
           str(workdir / f"uas{n}_errors.log")]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 10
        while not _bound_elsewhere(port):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "sipp never bound its SIP port"
            time.sleep(0.02)
        yield proc, f"sip:agent@127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=timeout_s + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def uas_done(proc: subprocess.Popen[str], workdir: Path, timeout_s: float = 30) -> None:
    rc = await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout_s)
    out = proc.stdout.read() if proc.stdout else ""
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("uas*_errors.log"))
    assert rc == 0, out[-3000:] + errors
