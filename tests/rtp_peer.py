"""An RTP endpoint on a UDP socket of its own, for tests that play a caller or an intruder:
it counts what it receives (with arrival times) and sends PCMU or RFC 4733 packets."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.g711 import ulaw_decode, ulaw_encode
from tests.rtp import telephone_event_packets

PCMU_SILENCE = b"\xff" * 160  # 20 ms of mu-law silence


@dataclass
class RtpPeer:
    ssrc: int
    sock: socket.socket = field(init=False)
    received: list[tuple[float, tuple[str, int], bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _seq: int = 1000
    _ts: int = 80000
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        t = threading.Thread(target=self._receive, daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append((time.monotonic(), addr, data))

    def first_source(self, timeout_s: float = 10.0) -> tuple[str, int]:
        """The address the IVR sends its RTP from (its RTP port for this call)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.received:
                return self.received[0][1]
            time.sleep(0.02)
        raise AssertionError("no RTP arrived from the IVR")

    def count_between(self, start: float, end: float) -> int:
        return sum(1 for t, _, _ in self.received if start <= t < end)

    def _packet(self, pt: int, marker: bool, payload: bytes, ts: int | None = None) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFF
        head = struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), self._seq,
                           (self._ts if ts is None else ts) & 0xFFFFFFFF, self.ssrc)
        return head + payload

    def send_audio(self, to: tuple[str, int], packets: int, interval_s: float = 0.02) -> None:
        for _ in range(packets):
            self._ts += 160
            self.sock.sendto(self._packet(0, False, PCMU_SILENCE), to)
            if interval_s:
                time.sleep(interval_s)

    def stream_audio(self, to: tuple[str, int]) -> None:
        """Send PCMU silence at 50 packets a second from a thread, until :meth:`close`."""
        def run() -> None:
            while not self._stop.is_set():
                self.send_audio(to, 1)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self._threads.append(t)

    def send_digit(self, to: tuple[str, int], digit: str, event_pt: int = 101) -> None:
        """One RFC 4733 key press, one packet every 20 ms, all with the event's timestamp."""
        self._ts += 160
        start = self._ts
        for marker, payload in telephone_event_packets(digit):
            self.sock.sendto(self._packet(event_pt, marker, payload, start), to)
            time.sleep(0.02)
        self._ts = start + 160 * 8

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.sock.close()


def stream_pcm(peer: RtpPeer, to: tuple[str, int], pcm: npt.NDArray[np.int16]) -> None:
    """Send ``pcm`` (8 kHz) as PCMU from ``peer``, looping, in real time, until it closes."""
    frames = [ulaw_encode(pcm[i:i + 160]) for i in range(0, len(pcm) - 159, 160)]

    def run() -> None:
        n = 0
        next_s = time.monotonic()
        while not peer._stop.is_set():
            peer._ts += 160
            try:
                peer.sock.sendto(peer._packet(0, n == 0, frames[n % len(frames)]), to)
            except OSError:
                return
            n += 1
            next_s += 0.02
            time.sleep(max(0.0, next_s - time.monotonic()))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    peer._threads.append(t)


def received_pcm(peer: RtpPeer, since_s: float = 0.0) -> npt.NDArray[np.int16]:
    """The PCMU audio ``peer`` received (arrived at or after ``since_s``), decoded."""
    payloads = [data[12:] for t, _, data in list(peer.received)
                if t >= since_s and len(data) > 12 and data[1] & 0x7F == 0]
    return ulaw_decode(b"".join(payloads))
