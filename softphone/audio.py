"""The call's audio between the SIP user agent (``media/agent_ua.py``) and the agent's ears
and mouth: ring buffers sized in ms, headless sources and sinks (tones, WAV files), level
meters. Sound devices (PortAudio through ``sounddevice``) are in ``softphone/devices.py``.

Everything is 16-bit signed little-endian mono PCM at ``clock_rate_hz`` (8000 by default).
The UA's media clock takes and gives one frame (20 ms) at a time on its own thread; a
device's callback does the same on PortAudio's. Between two clocks that never agree
exactly sits a :class:`RingBuffer`: writes past its size drop the oldest audio (counted as
overruns), reads past what it holds get silence (underruns); both stay bounded, so a stall
on either side costs at most the buffer's length in delay, never a growing lag.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np

SAMPLE_BYTES = 2
FULL_SCALE = 32768.0


class RingBuffer:
    """A bounded FIFO of PCM bytes, safe between two threads."""

    def __init__(self, size_ms: int, clock_rate_hz: int = 8000,
                 prefill_ms: int = 0) -> None:
        if size_ms <= 0:
            raise ValueError(f"a ring buffer needs a size in ms above 0 (got {size_ms})")
        self.clock_rate_hz = clock_rate_hz
        self.capacity_bytes = clock_rate_hz * size_ms // 1000 * SAMPLE_BYTES
        self._buf = bytearray(bytes(clock_rate_hz * prefill_ms // 1000 * SAMPLE_BYTES))
        self._lock = threading.Lock()
        self.overruns = 0  # writes that pushed out audio not yet read
        self.underruns = 0  # reads that found less than they asked for

    def write(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            extra = len(self._buf) - self.capacity_bytes
            if extra > 0:
                extra += extra % SAMPLE_BYTES
                del self._buf[:extra]
                self.overruns += 1

    def read(self, n_bytes: int) -> bytes:
        """``n_bytes`` of audio: what there is, then silence."""
        with self._lock:
            got = bytes(self._buf[:n_bytes])
            del self._buf[:n_bytes]
        if len(got) < n_bytes:
            self.underruns += 1
            got += bytes(n_bytes - len(got))
        return got

    @property
    def buffered_ms(self) -> float:
        with self._lock:
            return len(self._buf) / SAMPLE_BYTES * 1000 / self.clock_rate_hz


def level_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dB relative to full scale (a full-scale square wave is
    0 dBFS, a full-scale sine -3 dBFS); -120 for silence."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples ** 2)))
    return max(-120.0, 20 * float(np.log10(max(rms, 1e-9) / FULL_SCALE)))


class LevelMeter:
    """The last frame's level, for a meter on screen (read from any thread)."""

    def __init__(self) -> None:
        self.dbfs = -120.0
        self.peak_dbfs = -120.0  # the loudest frame since the last reset()
        self.frames = 0

    def feed(self, pcm: bytes) -> bytes:
        self.dbfs = level_dbfs(pcm)
        self.peak_dbfs = max(self.peak_dbfs, self.dbfs)
        self.frames += 1
        return pcm

    def reset(self) -> None:
        self.peak_dbfs = -120.0


class ToneSource:
    """A sine of ``hz`` at ``dbfs`` forever: the headless agent's voice."""

    def __init__(self, hz: float, clock_rate_hz: int = 8000, dbfs: float = -12.0) -> None:
        self.hz, self.clock_rate_hz = hz, clock_rate_hz
        self.amplitude = FULL_SCALE * 10 ** (dbfs / 20) * np.sqrt(2)
        self._n = 0

    def __call__(self, n_bytes: int) -> bytes:
        count = n_bytes // SAMPLE_BYTES
        t = (np.arange(count) + self._n) / self.clock_rate_hz
        self._n += count
        wave_ = np.clip(self.amplitude * np.sin(2 * np.pi * self.hz * t), -32768, 32767)
        return bytes(wave_.astype("<i2").tobytes())


class WavSource:
    """A WAV file (16-bit mono at the clock rate), looped."""

    def __init__(self, path: Path, clock_rate_hz: int = 8000) -> None:
        with wave.open(str(path), "rb") as w:
            if (w.getsampwidth(), w.getnchannels(), w.getframerate()) != (
                    SAMPLE_BYTES, 1, clock_rate_hz):
                raise ValueError(f"{path}: need 16-bit mono at {clock_rate_hz} Hz, got "
                                 f"{8 * w.getsampwidth()}-bit, {w.getnchannels()} channel(s), "
                                 f"{w.getframerate()} Hz")
            self._pcm = w.readframes(w.getnframes())
        if not self._pcm:
            raise ValueError(f"{path}: no audio in it")
        self._at = 0

    def __call__(self, n_bytes: int) -> bytes:
        out = bytearray()
        while len(out) < n_bytes:
            chunk = self._pcm[self._at:self._at + n_bytes - len(out)]
            out += chunk
            self._at = (self._at + len(chunk)) % len(self._pcm)
        return bytes(out)


class WavSink:
    """Keeps what the agent hears, for a WAV file (and for tests: ``pcm()``)."""

    def __init__(self, clock_rate_hz: int = 8000, max_s: float = 600.0) -> None:
        self.clock_rate_hz = clock_rate_hz
        self._max_bytes = int(max_s * clock_rate_hz) * SAMPLE_BYTES
        self._chunks: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()

    def __call__(self, pcm: bytes) -> None:
        with self._lock:
            if self._size + len(pcm) <= self._max_bytes:
                self._chunks.append(pcm)
                self._size += len(pcm)

    def pcm(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def save(self, path: Path) -> Path:
        with wave.open(str(path), "wb") as w:
            w.setsampwidth(SAMPLE_BYTES)
            w.setnchannels(1)
            w.setframerate(self.clock_rate_hz)
            w.writeframes(self.pcm())
        return path
