"""Interop: calls from baresip (a SIP stack we did not write) to a real worker.

baresip runs headless from a config directory made here: SIP on 127.0.0.1 only, no
registration, PCMU only, no sound device. A silent WAV played by the ``aufile`` module is the
microphone (baresip sends RTP, and so RFC 4733 telephone-events, only while an audio source
runs), and the ``sndfile`` filter records what baresip hears. The test drives baresip with
``-e /dial ...`` at startup and through the ``stdio`` module over a pipe, where a digit typed
during a call is sent as DTMF (RFC 4733 by default).

Checked against baresip 1.0.0 (Debian baresip-core). Its messages used here: "Call
established", "send DTMF digit", "incoming rtp for 'audio' established", "terminated".
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import WorkerProcess

BARESIP = shutil.which("baresip")
MODULES = ("stdio", "menu", "account", "g711", "aufile", "sndfile")
MODULE_DIRS = (
    Path("/usr/lib/baresip/modules"),
    Path("/usr/local/lib/baresip/modules"),
    Path("/usr/lib/x86_64-linux-gnu/baresip/modules"),
)


def _module_dir() -> Path | None:
    for d in MODULE_DIRS:
        if all((d / f"{m}.so").is_file() for m in MODULES):
            return d
    return None


MODULE_DIR = _module_dir()

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(shutil.which("baresip") is None,
                       reason="baresip (Debian package baresip-core) not installed"),
    pytest.mark.skipif(MODULE_DIR is None,
                       reason=f"baresip modules {', '.join(MODULES)} not found in "
                              f"{', '.join(map(str, MODULE_DIRS))}"),
]

SAFETY_QUIT_S = 120  # baresip -t: it quits by itself even if this test process dies


# --- baresip, the caller ----------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_port(start: int) -> int:
    """The first port from ``start`` free on UDP and TCP (baresip's sip_listen takes both)."""
    for port in range(start, start + 200):
        if _port_is_free(port):
            return port
    raise AssertionError(f"no free port in {start}..{start + 199}")


def _write_silence(path: Path, seconds: float) -> None:
    # aufile wants S16LE at the codec's rate (8 kHz for PCMU) and mono.
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))


@dataclass
class Baresip:
    proc: subprocess.Popen[str]
    audio_dir: Path
    lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread = field(default_factory=threading.Thread)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()

    def start_reading(self) -> None:
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout_s: float, since: int = 0) -> int:
        """Index of the first output line from ``since`` on that contains ``text``."""
        found: list[int] = []

        def seen() -> bool:
            for i in range(since, len(self.lines)):
                if text in self.lines[i]:
                    found.append(i)
                    return True
            return self.proc.poll() is not None and not self._reader.is_alive()

        with self._cond:
            self._cond.wait_for(seen, timeout=timeout_s)
        if not found:
            raise AssertionError(f"baresip never printed {text!r} (rc={self.proc.poll()}); "
                                 "its output:\n" + "".join(self.lines[-60:]))
        return found[0]

    def keys(self, text: str) -> None:
        """Type on baresip's console (the stdio module): a digit in a call is sent as DTMF."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def stop(self, timeout_s: float = 5.0) -> int:
        """``/quit``, then SIGTERM, then SIGKILL: each bounded. Closes both pipes."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):  # BrokenPipeError if it just went away
                self.keys("/quit\n")
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=timeout_s)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._reader.join(timeout=timeout_s)
        return self.proc.returncode

    def heard(self) -> npt.NDArray[np.int16]:
        """What baresip decoded from the IVR (the sndfile dump), as int16 samples."""
        dumps = sorted(self.audio_dir.glob("dump-*-dec.wav"))
        assert len(dumps) == 1, dumps
        with wave.open(str(dumps[0]), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@contextlib.contextmanager
def baresip_calling(uri: str, tmp_path: Path, sip_port: int,
                    rtp_ports: tuple[int, int], mediaenc: str | None = None,
                    extra_config: str = "") -> Iterator[Baresip]:
    """baresip dialling ``uri`` at startup; stopped (and its pipes closed) on the way out.
    ``mediaenc`` (``srtp-mand``: an RTP/SAVP offer with SDES keys) loads baresip's srtp
    module and sets the account's media encryption; ``extra_config``: more lines for its
    config file (``sip_cafile ...`` for TLS)."""
    assert BARESIP is not None and MODULE_DIR is not None
    conf = tmp_path / "baresip"
    audio = tmp_path / "baresip-audio"
    conf.mkdir()
    audio.mkdir()
    silence = tmp_path / "silence.wav"
    _write_silence(silence, 60)
    (conf / "config").write_text(f"""\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
call_local_timeout	20
call_max_calls		1
audio_path		/usr/share/baresip
audio_source		aufile,{silence}
rtp_ports		{rtp_ports[0]}-{rtp_ports[1]}
net_interface		127.0.0.1
dns_server		127.0.0.1:53
module_path		{MODULE_DIR}
module			stdio.so
module			g711.so
module			aufile.so
module			sndfile.so
module_tmp		account.so
{"module			srtp.so" if mediaenc else ""}
module_app		menu.so
snd_path		{audio}
ringback_disabled	yes
statmode_default	off
""" + extra_config)
    # No registration (regint=0): baresip calls the worker directly.
    (conf / "accounts").write_text(
        '"Interop Tester" <sip:tester@127.0.0.1>;regint=0;audio_codecs=pcmu'
        + (f";mediaenc={mediaenc}" if mediaenc else "") + "\n")
    proc = subprocess.Popen(
        [BARESIP, "-4", "-f", str(conf), "-t", str(SAFETY_QUIT_S), "-e", f"/dial {uri}"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    )
    phone = Baresip(proc, audio)
    phone.start_reading()
    try:
        yield phone
    finally:
        phone.stop()


# --- the call record ------------------------------------------------------------------------


def wait_ended(db: Path, timeout_s: float = 10.0) -> sqlite3.Row:
    deadline = time.monotonic() + timeout_s
    while True:
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute("SELECT * FROM calls ORDER BY arrived_at").fetchall()
        finally:
            con.close()
        if len(rows) == 1 and rows[0]["ended_at"] is not None:
            row: sqlite3.Row = rows[0]
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no single ended call record: {[dict(r) for r in rows]}")
        time.sleep(0.1)


def events(db: Path, call_id: str) -> list[tuple[str, dict[str, object]]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id",
                           (call_id,)).fetchall()
    finally:
        con.close()
    return [(kind, json.loads(data)) for kind, data in rows]


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("press_after_s", "node"),
    [(1.0, "welcome"), (3.0, "main_menu")],
    ids=["barge-in-on-welcome", "during-main-menu"],
)
def test_baresip_presses_2_and_is_routed_to_support(worker: WorkerProcess, tmp_path: Path,
                                                     press_after_s: float, node: str) -> None:
    offset = worker.port - 5200  # conftest spaces workers 10 apart: give each its own ports
    sip_port = _free_port(18000 + offset)
    rtp_start = 22000 + 4 * offset
    with baresip_calling(f"sip:ivr@{worker.target}", tmp_path, sip_port,
                         (rtp_start, rtp_start + 39)) as phone:
        up = phone.wait_for("Call established", timeout_s=15)
        time.sleep(press_after_s)  # welcome is 1.4 s long, then the main menu prompt (7.2 s)
        phone.keys("2")
        sent = phone.wait_for("send DTMF digit: '2'", timeout_s=5, since=up)
        # The IVR plays "support" (3.2 s) and "goodbye" (2.2 s), then sends BYE.
        phone.wait_for("terminated", timeout_s=20, since=sent)
        rc = phone.stop()
    out = "".join(phone.lines)
    assert rc == 0, out
    assert "incoming rtp for 'audio' established" in out, out  # the IVR's RTP reached baresip
    assert out.count("send DTMF digit: ") == 1, out

    heard = phone.heard().astype(float)
    assert len(heard) > 4 * 8000, f"baresip heard only {len(heard) / 8000:.1f} s"
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(heard**2)) / 32768 + 1e-12)
    assert rms_dbfs > -35, f"baresip heard silence ({rms_dbfs:.1f} dBFS)"

    row = wait_ended(worker.db)
    assert row["menu_path"] == "main_menu:2"
    assert row["dtmf_method"] == "rfc4733"
    assert row["end_reason"] == "normal"
    assert row["hangup_by"] == "ivr"
    assert row["sip_code"] == 200
    assert row["last_node"] == "goodbye"
    assert row["codec"] == "PCMU"
    assert row["from_uri"] == '"Interop Tester" <sip:tester@127.0.0.1>'
    assert row["to_uri"].startswith("<sip:ivr@127.0.0.1")

    evs = events(worker.db, row["call_id"])
    kinds = [k for k, _ in evs]
    assert kinds[:2] == ["arrived", "answered"] and kinds[-1] == "ended", kinds
    # One key press: the repeated end packets of the telephone-event count once.
    dtmf = [data for k, data in evs if k == "dtmf"]
    assert dtmf == [{"digit": "2", "method": "rfc4733", "node": node}], dtmf
    assert kinds.index("dtmf") < kinds.index("menu.choice")


@pytest.mark.skipif(MODULE_DIR is None or not (MODULE_DIR / "srtp.so").is_file(),
                    reason="baresip's srtp module not installed")
def test_a_baresip_srtp_offer_is_answered_with_srtp_and_audio_flows_both_ways(
        worker: WorkerProcess, tmp_path: Path) -> None:
    offset = worker.port - 5200
    sip_port = _free_port(18000 + offset)
    rtp_start = 22000 + 4 * offset
    # srtp-mand: baresip offers RTP/SAVP with a=crypto and takes no answer without keys.
    with baresip_calling(f"sip:ivr@{worker.target}", tmp_path, sip_port,
                         (rtp_start, rtp_start + 39), mediaenc="srtp-mand") as phone:
        up = phone.wait_for("Call established", timeout_s=15)
        time.sleep(1.0)
        phone.keys("2")  # an RFC 4733 event inside SRTP: the IVR must decrypt to see it
        sent = phone.wait_for("send DTMF digit: '2'", timeout_s=5, since=up)
        phone.wait_for("terminated", timeout_s=20, since=sent)
        rc = phone.stop()
    out = "".join(phone.lines)
    assert rc == 0, out
    assert "SRTP is Enabled" in out, out  # baresip took our a=crypto answer
    heard = phone.heard().astype(float)  # ... and decrypted the prompts we sent
    assert len(heard) > 4 * 8000, f"baresip heard only {len(heard) / 8000:.1f} s"
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(heard**2)) / 32768 + 1e-12)
    assert rms_dbfs > -35, f"baresip heard silence ({rms_dbfs:.1f} dBFS)"
    row = wait_ended(worker.db)
    assert row["menu_path"] == "main_menu:2"
    assert row["dtmf_method"] == "rfc4733"
    answered = [json.loads(line) for line in worker.lines if '"call.answered"' in line]
    assert [a["srtp"] for a in answered] == [True]
