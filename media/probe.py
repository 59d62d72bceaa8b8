"""What a test caller hears, as it arrives, and its RTP figures: the harness's ear.

:func:`listen` connects a port of our own to the leg's audio on the pump thread; PJMEDIA's
clock thread hands it each 20 ms frame of what the far end sends (decoded, after the jitter
buffer), and :meth:`Ear.push` only appends it with ``time.monotonic()``. The loop takes them
with :meth:`Ear.drain`. The port's frame is :data:`EAR_FRAME_MS` (100 ms): the bridge gathers
five of its 20 ms ticks for one call into Python, so the clock thread takes the GIL ten times
a second per call rather than fifty (that call was a third of a harness call's CPU). Each 20
ms frame's time is the call's time less 20 ms per frame that followed it in the batch (the
bridge's ticks are 20 ms apart). :func:`stream_stats` reads the call's RTP counters (RTCP-style
receive statistics: packets, loss, jitter; RFC 3550 section 6.4.1).

The ear takes the leg's tap slot, so the phone must not attach taps of its own
(``PhoneConfig(inband_dtmf="never")``, and no ``watch_level``/recording on that leg).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pjsua2 as pj

from .errors import LegBusyError
from .framebytes import vector_bytes
from .inband import TAP_CLOCK_RATE_HZ, TAP_FRAME_MS
from .leg import SipCallLeg

# The ear port's frame: PJMEDIA's bridge buffers a port whose frame is longer than its own
# 20 ms tick and hands it the audio once this much has gathered.
EAR_FRAME_MS = 100
_FRAME_BYTES = TAP_CLOCK_RATE_HZ * TAP_FRAME_MS // 1000 * 2  # one 20 ms frame, 16-bit
_FRAME_S = TAP_FRAME_MS / 1000


class Ear:
    """Frames heard on one leg, with their arrival times (``time.monotonic()``, seconds)."""

    def __init__(self) -> None:
        self._frames: deque[tuple[float, bytes]] = deque()
        self.sample_rate_hz = TAP_CLOCK_RATE_HZ
        self.frame_ms = TAP_FRAME_MS

    def push(self, frames: bytes) -> None:
        """PJMEDIA's clock thread: keep it to an append. ``frames``: one or more 20 ms
        frames, the last of them handed over now."""
        self._frames.append((time.monotonic(), frames))

    def drain(self) -> tuple[npt.NDArray[np.int16], list[float]]:
        """Samples heard since the last call and the arrival time of each 20 ms frame."""
        times: list[float] = []
        chunks: list[bytes] = []
        while self._frames:
            at, frames = self._frames.popleft()
            n = len(frames) // _FRAME_BYTES
            times.extend(at - (n - 1 - i) * _FRAME_S for i in range(n))
            chunks.append(frames[: n * _FRAME_BYTES])
        if not chunks:
            return np.zeros(0, np.int16), times
        return np.frombuffer(b"".join(chunks), dtype="<i2").copy(), times


_SILENT_FRAME = bytes(TAP_CLOCK_RATE_HZ * EAR_FRAME_MS // 1000 * 2)


class _EarPort(pj.AudioMediaPort):  # type: ignore[misc]
    def __init__(self, ear: Ear) -> None:
        super().__init__()
        self._ear = ear

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            buf = frame.buf  # a copy, alive while it is read
            self._ear.push(vector_bytes(buf))
        else:  # no audio this tick: heard as silence, so that time keeps counting
            self._ear.push(_SILENT_FRAME)


@dataclass(frozen=True)
class StreamStats:
    """Receive figures of the call's audio stream, and what we sent."""

    rx_packets: int
    rx_lost: int
    rx_jitter_ms: float  # mean interarrival jitter (RFC 3550)
    tx_packets: int
    rtt_ms: float  # mean RTCP round trip; 0 when no RTCP report came back
    jitter_buffer_ms: float = 0.0  # mean delay of a frame in our jitter buffer

    @property
    def loss_ratio(self) -> float:
        total = self.rx_packets + self.rx_lost
        return self.rx_lost / total if total else 0.0


async def listen(leg: SipCallLeg) -> Ear:
    """Attach an ear to ``leg``; frames flow until the call ends. Called right after
    ``place_call``, before the answer: the phone then connects the ear on the pump thread in
    the same step that brings the media up (``_reconnect_media`` connects the leg's tap
    port), so not a frame of an IVR that plays at once is missed."""
    ear = Ear()
    phone, handle = leg._phone, leg._handle

    def attach() -> None:
        phone._live(handle)
        port = _EarPort(ear)
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, TAP_CLOCK_RATE_HZ, 1, EAR_FRAME_MS * 1000, 16)
        port.createPort(f"ear-{leg.leg_id}", fmt)
        if handle.tap_port is not None:
            raise LegBusyError("the leg already has a tap (use a phone with inband_dtmf "
                               "'never' for probes)")
        if handle.audio is not None:
            handle.audio.startTransmit(port)
        # In the leg's tap slot: the phone follows it through re-INVITEs and destroys it
        # on the pump thread with the call (media.phone._destroy_media_port).
        handle.tap_port = port
        handle.tap_connected = True

    await phone.submit(attach)
    return ear


async def stream_stats(leg: SipCallLeg) -> StreamStats | None:
    """The call's RTP figures now (None once the call has ended)."""
    phone, handle = leg._phone, leg._handle

    def read() -> StreamStats | None:
        if handle.disconnected or handle.call is None or handle.audio_index < 0:
            return None
        try:  # one read of the stream's figures (pjsua2 copies them all each time)
            whole = handle.call.getStreamStat(handle.audio_index)
        except pj.Error:
            return None
        stat = whole.rtcp
        rx, tx = stat.rxStat, stat.txStat
        rtt = stat.rttUsec.mean / 1000 if stat.rttUsec.n else 0.0
        jb = float(whole.jbuf.avgDelayMsec)
        return StreamStats(rx.pkt, rx.loss, rx.jitterUsec.mean / 1000, tx.pkt, rtt, jb)

    return await phone.submit(read)
