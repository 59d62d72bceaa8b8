"""The frame adapter around the in-band DTMF detector, and the caller's voice level.

PJMEDIA's clock thread hands each 20 ms frame to :meth:`InbandTap.push`, which only appends
the bytes to a deque and returns. The asyncio side calls :meth:`drain` every few tens of
milliseconds and runs the Goertzel detector (``media.dtmf``) over the whole batch, and the
:class:`LevelMeter` when one is set (silence detection while recording, say).

A tap with ``detect_dtmf=False`` only feeds the level meter: it is the one attached to legs
whose digits come as RTP events or SIP INFO, so that no digit is reported twice.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from .dtmf import InbandDtmfDetector

TAP_CLOCK_RATE_HZ = 8000
TAP_FRAME_MS = 20

# Voice level: a 20 ms frame whose RMS is above VOICE_THRESHOLD_DBFS counts as the caller
# speaking. dBFS here is relative to a full-scale square wave (RMS 32768), so a full-scale
# sine is -3 dBFS. -40 dBFS sits above G.711 idle noise and comfort noise (-60 to -70 dBFS)
# and below quiet speech on a phone line (-30 to -20 dBFS RMS).
VOICE_THRESHOLD_DBFS = -40.0
LEVEL_FRAME_MS = 20
_FULL_SCALE = 32768.0


class FrameSink(Protocol):
    """Takes the caller's audio as the loop drains it: int16 samples at the tap's rate,
    the batch ending at about ``now_s`` (the loop's clock)."""

    def feed(self, samples: np.ndarray, now_s: float) -> None: ...


class LevelMeter:
    """Tracks whether, and when last, the caller's audio rose above a threshold.

    Fed on the loop with batches of 16-bit samples; each batch is cut into ``LEVEL_FRAME_MS``
    frames and their mean power compared with the threshold in one vectorised step. Times
    are the loop's clock (seconds): a batch is taken to end at ``now_s`` (it is drained within
    one poll, 60 ms, of arriving), so the last loud frame of a batch of ``n`` ended
    ``(n - 1 - k) * 20 ms`` earlier.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        started_at_s: float,
        threshold_dbfs: float = VOICE_THRESHOLD_DBFS,
    ) -> None:
        self.frame_samples = sample_rate_hz * LEVEL_FRAME_MS // 1000
        self._frame_s = LEVEL_FRAME_MS / 1000
        self._threshold_power = (_FULL_SCALE * 10 ** (threshold_dbfs / 20)) ** 2
        self._rest = np.zeros(0, dtype=np.int16)
        self.started_at_s = started_at_s
        self.heard_voice = False
        self.last_voice_at_s: float | None = None
        self.frames_seen = 0

    def feed(self, samples: np.ndarray, now_s: float) -> None:
        """Measure a batch of samples (int16) that ended at about ``now_s``."""
        if self._rest.size:
            samples = np.concatenate((self._rest, samples))
        n = samples.size // self.frame_samples
        self._rest = samples[n * self.frame_samples :].copy()
        if n == 0:
            return
        self.frames_seen += n
        frames = samples[: n * self.frame_samples].reshape(n, self.frame_samples)
        x = frames.astype(np.float64)
        power = np.einsum("ij,ij->i", x, x) / self.frame_samples
        loud = np.flatnonzero(power > self._threshold_power)
        if loud.size:
            self.heard_voice = True
            self.last_voice_at_s = now_s - (n - 1 - int(loud[-1])) * self._frame_s

    def trailing_silence_s(self, now_s: float) -> float:
        """Seconds since the audio was last above the threshold (since watching began if it
        never was)."""
        since = self.last_voice_at_s if self.last_voice_at_s is not None else self.started_at_s
        return max(0.0, now_s - since)


class InbandTap:
    def __init__(
        self, sample_rate_hz: int = TAP_CLOCK_RATE_HZ, *, detect_dtmf: bool = True
    ) -> None:
        self._frames: deque[bytes] = deque()
        self.sample_rate_hz = sample_rate_hz
        self.detect_dtmf = detect_dtmf
        self._detector = InbandDtmfDetector(sample_rate_hz) if detect_dtmf else None
        self.meter: LevelMeter | None = None  # set and read on the loop only
        # A speech menu's listener (ivr.speech.listener.SpeechListener): fed the same
        # batches on the loop, never on the media thread
        self.listener: FrameSink | None = None
        self.frames_seen = 0

    def push(self, frame: bytes) -> None:
        """Called on PJMEDIA's clock thread: keep it to an append."""
        self._frames.append(frame)

    def discard(self) -> None:
        """Drop queued frames unread (a level-only tap that nobody watches)."""
        self._frames.clear()

    def drain(self, now_s: float = 0.0) -> list[str]:
        """Run the detector (and the level meter, if set) over every frame queued since the
        last call; return new digits. ``now_s`` is the loop's time, for the level meter."""
        chunks: list[bytes] = []
        while self._frames:
            chunks.append(self._frames.popleft())
        if not chunks:
            return []
        self.frames_seen += len(chunks)
        samples = np.frombuffer(b"".join(chunks), dtype="<i2")
        if self.meter is not None:
            self.meter.feed(samples, now_s)
        if self.listener is not None:
            self.listener.feed(samples, now_s)
        if self._detector is None:
            return []
        return [d.digit for d in self._detector.process(samples)]
