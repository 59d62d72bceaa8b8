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


# Silence, for trimming a prompt's lead: a 10 ms frame whose RMS is below -50 dBFS (the
# prompt loader's rule, ivr/prompt_store.py). A caller waits through a prompt's leading
# silence as if the IVR were slow, so it goes when prompts are loaded: digital silence
# whole, and a quiet lead-in (room tone, a breath, a soft onset) but its last LEAD_KEEP_S.
SILENCE_DBFS = -50.0
SILENCE_FRAME_S = 0.010
LEAD_KEEP_S = 0.020
DIGITAL_SILENCE = 2  # |sample| at most this (16-bit): nothing (dither at most)


def sound_start(samples: Pcm16, sample_rate_hz: int) -> int:
    """Index of the first sample of the first 10 ms frame above SILENCE_DBFS (the prompt's
    sound begins there); ``samples.size`` when every frame is silent."""
    n = max(1, int(round(sample_rate_hz * SILENCE_FRAME_S)))
    frames = -(-samples.size // n)
    if frames == 0:
        return 0
    x = np.zeros(frames * n)
    x[: samples.size] = samples
    power = np.mean(x.reshape(frames, n) ** 2, axis=1) / 32768.0**2
    loud = np.flatnonzero(power >= 10 ** (SILENCE_DBFS / 10))
    return int(loud[0]) * n if loud.size else int(samples.size)


def lead_end(sound_at: int, first_nonzero: int, sample_rate_hz: int,
             keep_s: float = LEAD_KEEP_S) -> int:
    """Where a trimmed prompt begins: ``keep_s`` before its sound (``sound_at``), but never
    in the digital silence before its first sample that is not (``first_nonzero``)."""
    return max(0, sound_at - int(round(keep_s * sample_rate_hz)), min(first_nonzero, sound_at))


def trim_lead(samples: Pcm16, sample_rate_hz: int, keep_s: float = LEAD_KEEP_S) -> Pcm16:
    """``samples`` without their leading silence: none of its digital silence, at most
    ``keep_s`` of a quiet lead-in (a clip that is silence throughout is kept whole: the
    loaders refuse those)."""
    start = sound_start(samples, sample_rate_hz)
    if start >= samples.size:
        return samples
    nonzero = np.flatnonzero(np.abs(samples[:start].astype(np.int32)) > DIGITAL_SILENCE)
    first = int(nonzero[0]) if nonzero.size else start
    return samples[lead_end(start, first, sample_rate_hz, keep_s):]


def _lead_within_keep(path: Path, sample_rate_hz: int) -> bool:
    samples, _ = read_wav_mono16(path)
    return trim_lead(samples, sample_rate_hz).size == samples.size


def convert_prompt(src: Path, dst: Path, clock_rate_hz: int) -> WavInfo:
    """Convert ``src`` to mono 16-bit at ``clock_rate_hz`` in ``dst``, its leading silence
    trimmed (``trim_lead``; skipped if ``dst`` is up to date; a ``dst`` converted before
    leads were trimmed is converted again)."""
    if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        info = wav_info(dst)
        if info.sample_rate_hz == clock_rate_hz and info.channels == 1 and \
                _lead_within_keep(dst, clock_rate_hz):
            return info
    samples, rate = read_wav_mono16(src)
    if samples.size == 0:
        raise PromptError(f"{src}: the file holds no audio")
    out = resample(trim_lead(samples, rate), rate, clock_rate_hz)
    write_wav_mono16(dst, out, clock_rate_hz)
    return wav_info(dst)
