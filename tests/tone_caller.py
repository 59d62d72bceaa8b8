"""Callers that send a tone, for tests and benches that check audio passed through the stack.

Two kinds, both with sipp (``/usr/bin/sipp``) doing the SIP:

- :func:`pcap_tone_caller`: sipp alone, playing a PCMU RTP capture of a tone made here
  (:func:`write_tone_pcap`, from ``tests/tones.py`` and ``tests/rtp.py``) with
  ``play_pcap_audio``. Light (no Python per packet): what a bench runs by the hundred. sipp
  cannot record what it receives, so this caller only sends.
- :class:`ToneCaller`: sipp for the SIP, an :class:`~tests.rtp_peer.RtpPeer` socket named in
  its SDP for the media: it sends the tone (PCMU, in real time, looping) from the port it
  receives on and keeps every packet it gets, so a test can say what the caller heard
  (:meth:`ToneCaller.heard`). One Python thread per direction: for tests, not for load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests import sipp
from tests.rtp import write_rtp_pcap
from tests.rtp_peer import RtpPeer, received_pcm, stream_pcm
from tests.tones import tone_pcm


def write_tone_pcap(path: Path, freq_hz: float, seconds: float,
                    level_dbfs: float = -10.0) -> int:
    """A pcap of PCMU RTP (20 ms packets) carrying a tone, for sipp's play_pcap_audio;
    returns the packet count."""
    return write_rtp_pcap(path, tone_pcm(freq_hz, seconds, level_dbfs))


def pcap_tone_caller(name: str, pcap: Path, talk_ms: int,
                     description: str = "") -> sipp.Caller:
    """A sipp caller that plays ``pcap`` as soon as it is answered and hangs up (BYE) after
    ``talk_ms``. A pcap shorter than the talk leaves silence after it."""
    if talk_ms <= 0:
        raise ValueError(f"talk_ms={talk_ms}: give the talk time in milliseconds, above 0")
    if not pcap.is_file():
        raise ValueError(f"{pcap}: no such capture (make one with write_tone_pcap)")
    c = sipp.Caller(name, telephone_event=False, description=description or (
        f"A caller that sends the tone in {pcap.name} (PCMU) for {talk_ms} ms, then hangs "
        "up."))
    return c.play_pcap(pcap).pause(talk_ms).caller_hangs_up()


@dataclass
class ToneCaller:
    """A caller to ``target`` (host:port) that sends ``freq_hz`` and records what it hears,
    for ``talk_ms``, then hangs up. :meth:`start`, then :meth:`wait` for sipp's result."""

    target: str
    workdir: Path
    freq_hz: float
    talk_ms: int = 10000
    level_dbfs: float = -10.0
    name: str = "tone_caller"
    ivr_hangs_up: bool = False  # wait (up to talk_ms) for the stack's BYE instead
    peer: RtpPeer = field(init=False)
    result: sipp.SippResult | None = None
    sending_to: tuple[str, int] | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.peer = RtpPeer(ssrc=0xCA110000 | int(self.freq_hz) & 0xFFFF)

    def start(self) -> ToneCaller:
        scenario = sipp.Caller(self.name, media_port=self.peer.port, telephone_event=False)
        if self.ivr_hangs_up:  # talk_ms: how long the IVR may take to send its BYE
            scenario.ivr_hangs_up(self.talk_ms)
        else:
            scenario.pause(self.talk_ms).caller_hangs_up()
        timeout_s = self.talk_ms // 1000 + 30

        def call() -> None:
            self.result = sipp.run(scenario, self.target, self.workdir, timeout_s=timeout_s)

        def send() -> None:
            # The far end's RTP address is where its first packet comes from (the stack
            # sends from the port its SDP names): symmetric RTP, as the worker expects.
            try:
                to = self.peer.first_source(timeout_s=timeout_s)
            except AssertionError:
                return
            self.sending_to = to
            stream_pcm(self.peer, to, tone_pcm(self.freq_hz, 1.0, self.level_dbfs))

        for fn in (call, send):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def heard(self, since_s: float = 0.0) -> npt.NDArray[np.int16]:
        """The PCMU audio received so far (from ``time.monotonic()`` ``since_s`` on)."""
        return received_pcm(self.peer, since_s)

    def first_heard_at(self) -> float:
        """``time.monotonic()`` of the first RTP packet received (0.0 if none yet)."""
        return self.peer.received[0][0] if self.peer.received else 0.0

    def wait(self, timeout_s: float | None = None) -> sipp.SippResult:
        """sipp's result once it hung up (or failed); the RTP socket is closed after."""
        deadline = time.monotonic() + (timeout_s or self.talk_ms / 1000 + 60)
        call, send = self._threads
        call.join(timeout=max(0.0, deadline - time.monotonic()))
        # sipp is done: a sender still waiting for the IVR's first packet (a call ended
        # before any media) gives up now rather than at its own timeout
        self.peer._stop.set()
        send.join(timeout=max(0.0, deadline - time.monotonic()))
        self.peer.close()
        if self.result is None:
            raise AssertionError(f"{self.name}: sipp did not finish in time")
        return self.result
