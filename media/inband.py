"""The frame adapter around the in-band DTMF detector.

PJMEDIA's clock thread hands each 20 ms frame to :meth:`InbandTap.push`, which only appends
the bytes to a deque and returns. The asyncio side calls :meth:`drain` every few tens of
milliseconds and runs the Goertzel detector (``media.dtmf``) over the whole batch.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .dtmf import InbandDtmfDetector

TAP_CLOCK_RATE_HZ = 8000
TAP_FRAME_MS = 20


class InbandTap:
    def __init__(self, sample_rate_hz: int = TAP_CLOCK_RATE_HZ) -> None:
        self._frames: deque[bytes] = deque()
        self._detector = InbandDtmfDetector(sample_rate_hz)
        self.frames_seen = 0

    def push(self, frame: bytes) -> None:
        """Called on PJMEDIA's clock thread: keep it to an append."""
        self._frames.append(frame)

    def drain(self) -> list[str]:
        """Run the detector over every frame queued since the last call; return new digits."""
        chunks: list[bytes] = []
        while self._frames:
            chunks.append(self._frames.popleft())
        if not chunks:
            return []
        self.frames_seen += len(chunks)
        samples = np.frombuffer(b"".join(chunks), dtype="<i2")
        return [d.digit for d in self._detector.process(samples)]
