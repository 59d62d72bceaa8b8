"""Test tones: make a sine WAV for a phone to play, and tell which tone a recording holds.

A test makes each party play its own frequency (the caller 1000 Hz, the agent 1500 Hz, say)
and checks what each side recorded: :func:`tone_share` is the part of a channel's energy
that sits at one frequency (Goertzel, that is the DFT at that one frequency, per block of
``block_ms``, so a tone that drifts in phase across packets or gaps still adds up), between 0
(none of it) and about 1 (a pure tone). G.711 and a bridge's mixing leave a pure tone at
~0.95; another tone or silence leaves well under 0.01.

WAVs here are 8 kHz, 16-bit, mono unless said; recordings may have more channels (the
worker's two-channel recording: caller left, agent right).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE_HZ = 8000
Samples = npt.NDArray[np.int16]


def tone_pcm(freq_hz: float, seconds: float, level_dbfs: float = -10.0,
             rate_hz: int = RATE_HZ) -> Samples:
    """A sine of ``freq_hz`` whose peak is ``level_dbfs`` (0 = full scale), int16."""
    if not 0 < freq_hz < rate_hz / 2:
        raise ValueError(f"a tone of {freq_hz} Hz cannot be sampled at {rate_hz} Hz "
                         f"(0 < frequency < {rate_hz / 2})")
    if seconds <= 0:
        raise ValueError(f"a tone of {seconds} s: give a duration above 0")
    if level_dbfs > 0:
        raise ValueError(f"a level of {level_dbfs} dBFS would clip: give 0 or less")
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    return np.round(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def write_wav(path: Path, channels: Samples | list[Samples], rate_hz: int = RATE_HZ) -> Path:
    """Write int16 samples: one array (mono) or a list of equal-length arrays (channels)."""
    chans = channels if isinstance(channels, list) else [channels]
    if len({len(c) for c in chans}) != 1:
        raise ValueError(f"channels of different lengths: {[len(c) for c in chans]}")
    frames = np.stack([np.asarray(c, dtype=np.int16) for c in chans], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(chans))
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(frames.astype("<i2").tobytes())
    return path


def write_tone_wav(path: Path, freq_hz: float, seconds: float, level_dbfs: float = -10.0,
                   rate_hz: int = RATE_HZ) -> Path:
    """A mono 16-bit WAV of one tone: what baresip's aufile source and a worker's player
    take (8 kHz for PCMU)."""
    return write_wav(path, tone_pcm(freq_hz, seconds, level_dbfs, rate_hz), rate_hz)


def read_wav(path: Path) -> tuple[int, list[Samples]]:
    """The sample rate and each channel's samples of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit")
        rate, n_ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    frames = data[: len(data) - len(data) % n_ch].reshape(-1, n_ch)
    return rate, [frames[:, c].astype(np.int16) for c in range(n_ch)]


def goertzel_power(block: npt.NDArray[np.float64], rate_hz: int, freq_hz: float) -> float:
    """|X(f)|^2 of ``block`` at exactly ``freq_hz``: what the Goertzel filter computes
    (G. Goertzel, 1958), here as one vectorised dot product with the complex sinusoid."""
    n = np.arange(block.size)
    x = np.dot(block, np.exp(-2j * np.pi * freq_hz * n / rate_hz))
    return float(abs(x) ** 2)


def tone_share(pcm: Samples, freq_hz: float, rate_hz: int = RATE_HZ,
               block_ms: int = 100) -> float:
    """The part (0..1) of ``pcm``'s energy that is a tone at ``freq_hz``. A sine of
    amplitude A over N samples has |X|^2 = (A N / 2)^2 and energy A^2 N / 2, so per block
    2 |X|^2 / N is the tone's energy; summed over blocks and divided by the total energy."""
    x = pcm.astype(np.float64)
    total = float(np.dot(x, x))
    if total == 0.0:
        return 0.0
    size = max(1, rate_hz * block_ms // 1000)
    tone = 0.0
    for start in range(0, x.size - size + 1, size):
        tone += 2 * goertzel_power(x[start:start + size], rate_hz, freq_hz) / size
    return min(1.0, tone / total)


def rms_dbfs(pcm: Samples) -> float:
    """The RMS level of ``pcm`` in dB relative to full scale (32768)."""
    if pcm.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return 20 * float(np.log10(rms / 32768 + 1e-12))


@dataclass(frozen=True)
class ChannelTones:
    """What one channel of a recording holds: its length, level and the share of each
    asked frequency."""

    seconds: float
    level_dbfs: float
    share: dict[float, float]

    def holds(self, present_hz: float, absent_hz: float | None = None,
              min_share: float = 0.5) -> bool:
        """At least ``min_share`` of the energy is at ``present_hz`` (and, if given, at most
        a hundredth of that at ``absent_hz``)."""
        here = self.share[present_hz]
        if here < min_share:
            return False
        return absent_hz is None or self.share[absent_hz] * 100 < here


def measure(path: Path, freqs_hz: tuple[float, ...], skip_s: float = 0.0,
            block_ms: int = 100) -> list[ChannelTones]:
    """Each channel of the WAV at ``path``: level and the share of every frequency, after
    leaving out the first ``skip_s`` (call set-up, ring)."""
    rate, channels = read_wav(path)
    out = []
    for pcm in channels:
        pcm = pcm[int(skip_s * rate):]
        out.append(ChannelTones(
            seconds=pcm.size / rate, level_dbfs=rms_dbfs(pcm),
            share={f: tone_share(pcm, f, rate, block_ms) for f in freqs_hz}))
    return out


def describe(channels: list[ChannelTones]) -> str:
    """One line per channel, for assertion messages."""
    return "; ".join(
        f"ch{i}: {c.seconds:.1f} s at {c.level_dbfs:.1f} dBFS, "
        + ", ".join(f"{f:g} Hz {s:.3f}" for f, s in c.share.items())
        for i, c in enumerate(channels))
