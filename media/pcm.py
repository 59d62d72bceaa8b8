"""PCM helpers: read, check and convert WAV prompts once, at load time.

PJMEDIA plays the converted files itself; no audio is decoded in Python per call.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .errors import PromptError

Pcm16 = npt.NDArray[np.int16]


@dataclass(frozen=True)
class WavInfo:
    sample_rate_hz: int
    channels: int
    sample_width_bytes: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate_hz if self.sample_rate_hz else 0.0


def wav_info(path: Path) -> WavInfo:
    try:
        with wave.open(str(path), "rb") as w:
            return WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise PromptError(f"{path}: not a readable PCM WAV file ({exc})") from exc


def read_wav_mono16(path: Path) -> tuple[Pcm16, int]:
    """Read a PCM WAV as mono int16 samples and its sample rate (stereo is averaged)."""
    info = wav_info(path)
    if info.sample_width_bytes != 2:
        raise PromptError(
            f"{path}: {8 * info.sample_width_bytes}-bit samples; prompts must be 16-bit PCM"
        )
    with wave.open(str(path), "rb") as w:
        raw = w.readframes(info.frames)
    samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if info.channels > 1:
        samples = samples.reshape(-1, info.channels).mean(axis=1).astype(np.int16)
    return samples, info.sample_rate_hz


def write_wav_mono16(path: Path, samples: Pcm16, sample_rate_hz: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(samples.astype("<i2").tobytes())
    tmp.replace(path)


def resample(samples: Pcm16, from_hz: int, to_hz: int) -> Pcm16:
    """Band-limited resampling by a windowed-sinc kernel evaluated at the output instants.

    Good enough for telephone prompts converted once at load; not meant for the media path.
    """
    if from_hz == to_hz or samples.size == 0:
        return samples.copy()
    x = samples.astype(np.float64)
    n_out = int(round(samples.size * to_hz / from_hz))
    t = np.arange(n_out) * (from_hz / to_hz)  # output instants in input-sample units
    cutoff = min(1.0, to_hz / from_hz)  # normalised to the input Nyquist
    half_taps = 16
    base = np.floor(t).astype(np.int64)
    offsets = np.arange(-half_taps + 1, half_taps + 1)
    idx = base[:, None] + offsets[None, :]
    d = t[:, None] - idx
    kernel = cutoff * np.sinc(cutoff * d) * np.hanning(2 * half_taps + 1)[
        np.clip(np.round(d + half_taps).astype(np.int64), 0, 2 * half_taps)
    ]
    valid = (idx >= 0) & (idx < x.size)
    taps = np.where(valid, x[np.clip(idx, 0, x.size - 1)], 0.0)
    y = (taps * kernel).sum(axis=1)
    out: Pcm16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return out


def convert_prompt(src: Path, dst: Path, clock_rate_hz: int) -> WavInfo:
    """Convert ``src`` to mono 16-bit at ``clock_rate_hz`` in ``dst`` (skipped if up to date)."""
    if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        info = wav_info(dst)
        if info.sample_rate_hz == clock_rate_hz and info.channels == 1:
            return info
    samples, rate = read_wav_mono16(src)
    if samples.size == 0:
        raise PromptError(f"{src}: the file holds no audio")
    out = resample(samples, rate, clock_rate_hz)
    write_wav_mono16(dst, out, clock_rate_hz)
    return wav_info(dst)
