"""baresip as an agent's phone, for end-to-end tests: a SIP stack we did not write, registered
as sip:ID@domain through the front (Kamailio as outbound proxy) with digest authentication.

An :class:`AgentPhone` answers by itself after ``answer_after_s`` (``answer="auto"``), lets
every call ring (``"never"``: ring no answer) or refuses it (``"busy"``: baresip's reject of
an incoming call, 486 Busy Here). It plays a WAV as its microphone (baresip's ``aufile``
audio source: 8 kHz mono S16LE, e.g. ``tests/tones.write_tone_wav``) and records what it
hears (the ``sndfile`` filter writes ``dump-<time>-dec.wav``, the decoded audio, and
``-enc.wav``, what it sent, per call). Driven through the ``stdio`` module over a pipe:
``/accept``, ``/hangup``, ``/hold``, ``/resume``. It reports what it saw from its console
output, including the SIP trace (``baresip -s``): the INVITEs it received with their
headers.

Checked against baresip 1.0.0 (Debian baresip-core, modules in /usr/lib/baresip/modules; its
``aufile`` is a source only, ``ctrl_tcp`` is there but the console is enough here). Its
messages used: "registered successfully", "Incoming call from", "Call established",
"session closed" / "terminate".
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.test_interop_baresip import (
    BARESIP,
    MODULE_DIR,
    SAFETY_QUIT_S,
    Baresip,
    _free_port,
    _write_silence,
)

Answer = Literal["auto", "never", "busy"]
ANSWERS: tuple[Answer, ...] = ("auto", "never", "busy")


@dataclass(frozen=True)
class TracedMessage:
    """One SIP message from baresip's trace: from ``source`` to ``destination``
    (``host:port``), its text from the start line on (request line, headers, SDP)."""

    source: str
    destination: str
    text: str
    received: bool  # sent to the phone's own SIP address (else: sent by it)

    def header(self, name: str) -> str:
        """The first value of header ``name`` (case-insensitive), or ``""``."""
        head = self.text.split("\n\n", 1)[0]
        for line in head.splitlines()[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return ""

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def sdp_direction(self) -> str:
        """``sendrecv`` unless the SDP says ``sendonly``, ``recvonly`` or ``inactive``."""
        for d in ("sendonly", "recvonly", "inactive"):
            if f"a={d}" in self.text:
                return d
        return "sendrecv"


@dataclass
class AgentPhone(Baresip):
    """A running baresip agent (made by :func:`baresip_agent`)."""

    agent_id: str = ""
    sip_port: int = 0
    answer: Answer = "auto"
    answer_after_s: float = 0.0
    _answerer: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    # -- what it saw ------------------------------------------------------------------------

    def wait_registered(self, timeout_s: float = 15.0) -> int:
        return self.wait_for("registered successfully", timeout_s)

    def wait_incoming(self, timeout_s: float = 15.0, since: int = 0) -> int:
        """Index of the next "Incoming call" line from ``since`` on."""
        return self.wait_for("Incoming call", timeout_s, since)

    def wait_established(self, timeout_s: float = 15.0, since: int = 0) -> int:
        return self.wait_for("Call established", timeout_s, since)

    def wait_ended(self, timeout_s: float = 15.0, since: int = 0) -> int:
        """The call's end, whoever hung up (baresip prints "terminated" for a BYE or CANCEL
        it got, and "session closed" for its own)."""
        ends = ("terminated", "session closed", "Call terminated")
        found: list[int] = []

        def seen() -> bool:
            for i in range(since, len(self.lines)):
                if any(e in self.lines[i] for e in ends):
                    found.append(i)
                    return True
            return self.proc.poll() is not None and not self._reader.is_alive()

        with self._cond:
            self._cond.wait_for(seen, timeout=timeout_s)
        if not found:
            raise AssertionError(f"baresip {self.agent_id}: the call never ended; output:\n"
                                 + "".join(self.lines[-60:]))
        return found[0]

    def mark(self) -> int:
        """Where the output is now: the ``since`` for a wait on what comes next."""
        with self._cond:
            return len(self.lines)

    def count(self, text: str) -> int:
        with self._cond:
            return sum(1 for line in self.lines if text in line)

    def sip_trace(self) -> list[TracedMessage]:
        """Every SIP message of the trace (``baresip -s``), sent or received, in order."""
        with self._cond:
            lines = list(self.lines)
        return parse_trace(lines, f"127.0.0.1:{self.sip_port}")

    def invites(self) -> list[TracedMessage]:
        """The INVITEs it received (initial ones and re-INVITEs), in order."""
        return [m for m in self.sip_trace()
                if m.received and m.text.startswith("INVITE ")]

    def offered(self) -> list[TracedMessage]:
        """The calls offered to it: initial INVITEs (no To tag), retransmissions once."""
        seen: set[str] = set()
        out = []
        for inv in self.invites():
            key = inv.header("Call-ID")
            if ";tag=" not in inv.header("To") and key not in seen:
                seen.add(key)
                out.append(inv)
        return out

    def sent(self, start: str) -> list[TracedMessage]:
        """The messages it sent whose first line starts with ``start`` (``"SIP/2.0 486"``,
        ``"INVITE "``: its re-INVITEs for hold and resume)."""
        return [m for m in self.sip_trace() if not m.received and m.text.startswith(start)]

    def wait_sent(self, start: str, count: int, timeout_s: float = 5.0) -> list[TracedMessage]:
        """:meth:`sent`, once it holds ``count`` messages (baresip's trace reaches us on its
        stdout, after the far end may already have acted on the message)."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.sent(start)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def answered(self) -> int:
        """How many INVITEs it answered 200 (initial ones and re-INVITEs)."""
        return sum(1 for m in self.sent("SIP/2.0 200 ") if m.header("CSeq").endswith(" INVITE"))

    def recordings(self) -> list[Path]:
        """What it heard, one WAV per call (oldest first)."""
        return sorted(self.audio_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)

    # -- what it does -----------------------------------------------------------------------

    def accept(self) -> None:
        self.keys("/accept\n")

    def hangup(self) -> None:
        self.keys("/hangup\n")

    def hold(self) -> None:
        self.keys("/hold\n")

    def resume(self) -> None:
        self.keys("/resume\n")

    def _answer_calls(self) -> None:
        """For ``answer_after_s`` > 0 and ``busy``: act on each "Incoming call" line."""
        handled = 0
        while not self._stopping.is_set() and self.proc.poll() is None:
            with self._cond:
                self._cond.wait(timeout=0.5)
                offered = sum(1 for line in self.lines if "Incoming call" in line)
            while handled < offered and not self._stopping.is_set():
                handled += 1
                if self.answer == "busy":
                    self.hangup()
                elif not self._stopping.wait(self.answer_after_s):
                    self.accept()

    def stop(self, timeout_s: float = 5.0) -> int:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        rc = super().stop(timeout_s)
        if self._answerer is not None:
            self._answerer.join(timeout=timeout_s)
        return rc


def parse_trace(lines: list[str], local: str) -> list[TracedMessage]:
    """The SIP messages in baresip's console output with ``-s``: each is printed as a line
    ``ESC[36;1m#``, then ``UDP 127.0.0.1:A -> 127.0.0.1:B``, the message, and ``ESC[;m``."""
    out: list[TracedMessage] = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip("\r\n").endswith("\x1b[36;1m#") and i + 1 < len(lines):
            route = lines[i + 1].split()
            body: list[str] = []
            j = i + 2
            while j < len(lines) and "\x1b[;m" not in lines[j]:
                body.append(lines[j].rstrip("\r\n"))
                j += 1
            if len(route) == 4 and route[2] == "->":
                out.append(TracedMessage(route[1], route[3], "\n".join(body).strip("\n"),
                                        received=route[3] == local))
            i = j + 1
            continue
        i += 1
    return out


@contextlib.contextmanager
def baresip_agent(tmp_path: Path, front_port: int, agent_id: str, password: str,
                  name: str = "agent", *, domain: str = "127.0.0.1",
                  answer: Answer = "auto", answer_after_s: float = 0.0,
                  play: Path | None = None, sip_trace: bool = True,
                  rtp_ports: tuple[int, int] = (22700, 22739),
                  sip_port_from: int = 18700,
                  quit_after_s: int = SAFETY_QUIT_S) -> Iterator[AgentPhone]:
    """baresip registering as sip:``agent_id``@``domain`` through the front at
    127.0.0.1:``front_port`` (outbound proxy) with ``password``; stopped on the way out.

    ``answer``: ``auto`` answers after ``answer_after_s``, ``never`` lets it ring (ring no
    answer), ``busy`` refuses (486).
    ``play``: the WAV it sends as its microphone (30 s of silence if None): make it longer
    than the calls, aufile does not loop. ``sip_trace`` (baresip ``-s``) feeds
    :meth:`AgentPhone.invites`, ``offered``, ``sent`` and ``answered``: without it they are
    empty. Several phones in one test need their own ``name`` and ``rtp_ports``; its SIP port
    is the first free one from ``sip_port_from`` (200 to try; baresip takes that port and the
    next, so about 100 phones per start). baresip quits by itself after ``quit_after_s``
    even if the test process dies."""
    assert BARESIP is not None and MODULE_DIR is not None
    mode = answer
    if mode not in ANSWERS:
        raise ValueError(f"answer={mode!r}: give one of {', '.join(ANSWERS)}")
    if answer_after_s < 0:
        raise ValueError(f"answer_after_s={answer_after_s}: give 0 or more seconds")
    conf, audio = tmp_path / f"{name}-conf", tmp_path / f"{name}-audio"
    conf.mkdir()
    audio.mkdir()
    if play is None:
        play = tmp_path / f"{name}-silence.wav"
        _write_silence(play, 30)
    sip_port = _free_port(sip_port_from)
    (conf / "config").write_text(f"""\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
call_max_calls		1
audio_path		/usr/share/baresip
audio_source		aufile,{play}
audio_player		sndfile,nowhere
rtp_ports		{rtp_ports[0]}-{rtp_ports[1]}
net_interface		127.0.0.1
dns_server		127.0.0.1:53
module_path		{MODULE_DIR}
module			stdio.so
module			g711.so
module			aufile.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
snd_path		{audio}
statmode_default	off
""")
    baresip_mode = "auto" if mode == "auto" and answer_after_s == 0 else "manual"
    (conf / "accounts").write_text(
        f'"Agent {agent_id}" <sip:{agent_id}@{domain}>;auth_pass={password};'
        f'outbound="sip:127.0.0.1:{front_port};transport=udp";regint=600;'
        f"answermode={baresip_mode};audio_codecs=pcmu\n")
    cmd = [BARESIP, "-4", "-f", str(conf), "-t", str(quit_after_s)]
    if sip_trace:
        cmd.append("-s")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace")
    phone = AgentPhone(proc, audio, agent_id=agent_id, sip_port=sip_port, answer=mode,
                       answer_after_s=answer_after_s)
    phone.start_reading()
    if baresip_mode == "manual" and mode != "never":
        phone._answerer = threading.Thread(target=phone._answer_calls, daemon=True)
        phone._answerer.start()
    try:
        yield phone
    finally:
        phone.stop()
