"""Generated caller audio for the speech tests and bench: espeak-ng speech through G.711,
silence, noise at a given SNR, clicks and DTMF tones, all 8 kHz mono int16."""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE_HZ = 8000
Pcm = npt.NDArray[np.int16]
_DTMF_ROWS = {"1": 697, "2": 697, "3": 697, "4": 770, "5": 770, "6": 770,
              "7": 852, "8": 852, "9": 852, "*": 941, "0": 941, "#": 941}
_DTMF_COLS = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
              "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477}


def speech(text: str, voice: str = "en-us", speed_wpm: int = 160, pitch: int = 50) -> Pcm:
    """``text`` spoken by espeak-ng, resampled to 8 kHz by sox, through G.711 mu-law, with
    espeak-ng's leading and trailing silence cut off (the result is the speech itself)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "8k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch),
                        "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", "-V1", str(raw), "-r", str(RATE_HZ), "-b", "16", "-c", "1",
                        str(out)], check=True, capture_output=True)
        with wave.open(str(out), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 64)
    if loud.size:
        pcm = pcm[loud[0] : loud[-1] + 1]
    return g711(pcm)


def g711(pcm: Pcm) -> Pcm:
    """Round trip through mu-law (ITU-T G.711), as the caller's audio reaches us."""
    x = np.clip(pcm.astype(np.float64) / 32768.0, -1.0, 1.0)
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round(y * 127.0) / 127.0
    back = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    return np.round(back * 32767.0).astype(np.int16)


def silence(seconds: float) -> Pcm:
    return np.zeros(int(RATE_HZ * seconds), dtype=np.int16)


def noise(seconds: float, level_dbfs: float, seed: int = 1) -> Pcm:
    """White noise whose RMS is ``level_dbfs`` (relative to full-scale square)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(RATE_HZ * seconds)) * 32768.0 * 10 ** (level_dbfs / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def with_noise(pcm: Pcm, snr_db: float, seed: int = 1) -> Pcm:
    """``pcm`` plus white noise ``snr_db`` below the speech's active-frame power."""
    x = pcm.astype(np.float64)
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    power = (frames**2).mean(axis=1)
    active = power[power > power.max() * 1e-3]
    speech_power = float(active.mean()) if active.size else 1.0
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(x.size) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return np.clip(np.round(x + n), -32768, 32767).astype(np.int16)


def click(level_dbfs: float = -6.0, duration_ms: int = 10) -> Pcm:
    """A short broadband burst (a handset knock, a line crackle)."""
    n = RATE_HZ * duration_ms // 1000
    rng = np.random.default_rng(7)
    env = np.exp(-np.arange(n) / (n / 4))
    x = rng.standard_normal(n) * env * 32768.0 * 10 ** (level_dbfs / 20) * 2
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def dtmf(key: str, duration_ms: int = 100, level_dbfs: float = -10.0) -> Pcm:
    t = np.arange(RATE_HZ * duration_ms // 1000) / RATE_HZ
    amp = 32767 * 10 ** (level_dbfs / 20) / 2
    x = amp * (np.sin(2 * np.pi * _DTMF_ROWS[key] * t) + np.sin(2 * np.pi * _DTMF_COLS[key] * t))
    return np.round(x).astype(np.int16)


def concat(*parts: Pcm) -> Pcm:
    return np.concatenate(parts).astype(np.int16)


def frames(pcm: Pcm, frame_ms: int = 20) -> list[Pcm]:
    """Cut into whole frames (a partial tail is padded with silence)."""
    n = RATE_HZ * frame_ms // 1000
    pad = (-pcm.size) % n
    padded = np.concatenate((pcm, np.zeros(pad, dtype=np.int16)))
    return list(padded.reshape(-1, n))
