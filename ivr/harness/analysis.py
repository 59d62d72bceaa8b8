"""Pure audio and quality functions of a harness call: tones, hold music, DTMF to send,
and the E-model MOS estimate. 16-bit mono PCM at 8000 Hz unless named otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 8000
FRAME_SAMPLES = 160  # 20 ms

# ITU-T Q.23 DTMF frequency pairs (Hz)
_LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770,
        "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}
_HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
         "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633,
         "C": 1633, "D": 1633}


def dtmf_pcm(digits: str, tone_ms: int = 100, gap_ms: int = 100,
             level_dbfs: float = -10.0) -> npt.NDArray[np.int16]:
    """In-band DTMF: each digit's two tones for ``tone_ms`` then ``gap_ms`` of silence
    (Q.24 asks >= 40 ms of each); each tone at ``level_dbfs`` peak."""
    amp = 32767 * 10 ** (level_dbfs / 20)
    t = np.arange(SAMPLE_RATE_HZ * tone_ms // 1000) / SAMPLE_RATE_HZ
    gap = np.zeros(SAMPLE_RATE_HZ * gap_ms // 1000)
    parts = [gap]
    for d in digits.upper():
        parts.append(amp * (np.sin(2 * np.pi * _LOW[d] * t) + np.sin(2 * np.pi * _HIGH[d] * t)))
        parts.append(gap)
    return np.concatenate(parts).clip(-32768, 32767).astype(np.int16)


def frame_levels_dbfs(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    n = samples.size // FRAME_SAMPLES
    x = samples[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    rms = np.sqrt(np.mean(x * x, axis=1)) if n else np.zeros(0)
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-3) / 32768.0))


def tone_frames(samples: npt.NDArray[np.int16], hz: float, min_share: float = 0.6,
                floor_dbfs: float = -40.0) -> npt.NDArray[np.bool_]:
    """Per 20 ms frame: is most of its power (``min_share``) within 50 Hz of ``hz``?"""
    n = samples.size // FRAME_SAMPLES
    if n == 0:
        return np.zeros(0, bool)
    x = samples[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    spec = np.abs(np.fft.rfft(x * np.hanning(FRAME_SAMPLES), n=4 * FRAME_SAMPLES, axis=1)) ** 2
    freqs = np.fft.rfftfreq(4 * FRAME_SAMPLES, 1 / SAMPLE_RATE_HZ)
    near = np.abs(freqs - hz) <= 50
    share = spec[:, near].sum(axis=1) / np.maximum(spec.sum(axis=1), 1e-9)
    out: npt.NDArray[np.bool_] = (share >= min_share) & (frame_levels_dbfs(samples) > floor_dbfs)
    return out


def longest_run(flags: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(start, length) of the longest run of True (0, 0 if none)."""
    if not flags.any():
        return 0, 0
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - starts[k])


def emodel_mos(loss_ratio: float, one_way_delay_ms: float, ie: float = 0.0,
               bpl: float = 25.1, burst_ratio: float = 1.0) -> float:
    """MOS-CQE estimate from the E-model (ITU-T G.107, default transmission rating R0 - Is
    = 93.2). Defaults: G.711 with packet-loss concealment (Ie = 0, Bpl = 25.1, G.113
    Appendix I), random loss (BurstR = 1)."""
    d = max(0.0, one_way_delay_ms)
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = 100.0 * max(0.0, min(1.0, loss_ratio))
    ie_eff = ie + (95 - ie) * ppl / (ppl / burst_ratio + bpl)
    r = 93.2 - i_d - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return round(1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6, 2)
