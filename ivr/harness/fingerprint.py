"""Audio fingerprints of prompts, and finding a prompt in what a harness call heard.

Pure numpy over 16-bit mono PCM at 8000 Hz. The fingerprint follows the idea of Haitsma and
Kalker ("A Highly Robust Audio Fingerprinting System", ISMIR 2002), our own implementation
cut to telephone audio: every ``HOP_SAMPLES`` (4 ms) a ``WINDOW_SAMPLES`` (64 ms) Hann
window is cut into ``BANDS`` log-spaced bands between 300 and 3400 Hz (the G.711 passband),
and each of the ``BITS`` bits of a frame is the sign of the band-energy difference between
neighbouring bands, differenced again over time. Only signs of differences are kept, so a
gain change, and the quantisation noise of G.711, move few bits; another prompt gives about
half the bits wrong. No training: a prompt's fingerprint is computed from its WAV when its
set is loaded.

A prompt is *found* in heard audio where the bit error rate (BER) over the prompt's
voiced frames falls below :data:`MATCH_BER`. Measured on the shipped sets (through
G.711 u-law, at -14 dB, at the worst sub-hop offset): a prompt against itself at most 0.15;
against another prompt 0.2 only for near-twins ("Connecting you to sales/support...", which
:mod:`ivr.harness.prompt_index` tells apart by the lower BER), unrelated audio near 0.5.
A heard frame below :data:`HEARD_SILENCE_DBFS` counts as all bits wrong: silence is not a
prompt (a steady tone and digital silence have near-constant bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 8000
WINDOW_SAMPLES = 512  # 64 ms
HOP_SAMPLES = 32  # 4 ms: a frame's offset error is at most 2 ms, 1/32 of the window
HOP_MS = HOP_SAMPLES * 1000 / SAMPLE_RATE_HZ
BANDS = 17
BITS = BANDS - 1
LOW_HZ, HIGH_HZ = 300.0, 3400.0
MATCH_BER = 0.25
HEARD_SILENCE_DBFS = -55.0  # below G.711 speech pauses' hiss, above digital silence
# A frame whose RMS is below this (dBFS, full-scale square wave = 0) is silence: its bits are
# noise. The same threshold as media.inband.VOICE_THRESHOLD_DBFS.
SILENCE_DBFS = -40.0
# Bump when a fingerprint of the same audio would come out otherwise: cached prints
# (ivr/harness/print_cache.py) carry it and are recomputed when it changed.
VERSION = f"1-{WINDOW_SAMPLES}-{HOP_SAMPLES}-{BANDS}-{LOW_HZ:g}-{HIGH_HZ:g}-{SILENCE_DBFS:g}"
_FULL_SCALE = 32768.0


def _popcount_table(x: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    out: npt.NDArray[np.uint8] = _POPCOUNT16[x]
    return out


_POPCOUNT16 = np.unpackbits(np.arange(1 << 16, dtype=">u2").view(np.uint8).reshape(-1, 2),
                            axis=1).sum(axis=1).astype(np.uint8)
# Set bits per frame (uint16 in, uint8 out): numpy's ufunc where it has one (numpy >= 2.0,
# some 7 times faster than the table: it runs for every offset scored), else the table.
popcount = getattr(np, "bitwise_count", _popcount_table)
_WINDOW = np.hanning(WINDOW_SAMPLES).astype(np.float64)
_EDGES_HZ = np.geomspace(LOW_HZ, HIGH_HZ, BANDS + 1)
_BIN_HZ = SAMPLE_RATE_HZ / WINDOW_SAMPLES
_BAND_OF_BIN = np.digitize(np.arange(WINDOW_SAMPLES // 2 + 1) * _BIN_HZ, _EDGES_HZ) - 1
_WEIGHTS = np.zeros((WINDOW_SAMPLES // 2 + 1, BANDS))
for _b in range(BANDS):
    _WEIGHTS[_BAND_OF_BIN == _b, _b] = 1.0
_BIT_VALUES = (1 << np.arange(BITS)).astype(np.uint32)


def frame_level_dbfs(samples: npt.NDArray[np.int16], frame_samples: int) -> npt.NDArray[np.float64]:
    """RMS level (dBFS) of each whole frame of ``frame_samples``."""
    n = samples.size // frame_samples
    if n == 0:
        return np.zeros(0)
    x = samples[: n * frame_samples].astype(np.float64).reshape(n, frame_samples)
    rms = np.sqrt(np.einsum("ij,ij->i", x, x) / frame_samples)
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-3) / _FULL_SCALE))


def _band_energies(samples: npt.NDArray[np.int16], skip_quiet: bool = False
                   ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Band energies (frames x BANDS) and RMS level (dBFS) of each window. ``skip_quiet``
    (heard audio): no transform of a window below :data:`HEARD_SILENCE_DBFS` (its bits are
    scored as all wrong) unless the next one is sound (its bits difference against it), nor
    of the last (the next piece's first frame does); their energies are left 0."""
    n = (samples.size - WINDOW_SAMPLES) // HOP_SAMPLES + 1
    if n <= 0:
        return np.zeros((0, BANDS)), np.zeros(0)
    x = samples.astype(np.float64)
    # each window's energy from running sums of the squares: no second pass over the windows
    sq = np.concatenate(([0.0], np.cumsum(x * x)))
    starts = np.arange(n) * HOP_SAMPLES
    rms = np.sqrt(np.maximum(sq[starts + WINDOW_SAMPLES] - sq[starts], 0.0) / WINDOW_SAMPLES)
    level = 20 * np.log10(np.maximum(rms, 1e-3) / _FULL_SCALE)
    step = x.strides[0]
    frames = np.lib.stride_tricks.as_strided(x, (n, WINDOW_SAMPLES), (HOP_SAMPLES * step, step),
                                             writeable=False)
    if not skip_quiet:
        return _power(frames), level
    need = level >= HEARD_SILENCE_DBFS
    need[:-1] |= need[1:]
    need[-1] = True
    if need.all():
        return _power(frames), level
    energies = np.zeros((n, BANDS))
    rows = np.flatnonzero(need)
    energies[rows] = _power(frames[rows])
    return energies, level


def _power(frames: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Band energies of windows (rows of WINDOW_SAMPLES)."""
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    out: npt.NDArray[np.float64] = (spectrum.real ** 2 + spectrum.imag ** 2) @ _WEIGHTS
    return out  # |X|^2 without a sqrt


def _bits(energies: npt.NDArray[np.float64], previous: npt.NDArray[np.float64]
          ) -> npt.NDArray[np.uint16]:
    """Frame bits from band energies; ``previous`` is the energy row before the first."""
    log_e = np.log(energies + 1e-9)
    diff = log_e[:, :-1] - log_e[:, 1:]
    prev = np.vstack((np.log(previous + 1e-9)[None, :-1] - np.log(previous + 1e-9)[None, 1:],
                      diff[:-1]))
    bits = (diff - prev) > 0
    out: npt.NDArray[np.uint16] = (bits.astype(np.uint32) @ _BIT_VALUES).astype(np.uint16)
    return out


@dataclass(frozen=True)
class Fingerprint:
    """Frame bits (uint16 per ``HOP_MS``) and which frames are voiced (above silence)."""

    bits: npt.NDArray[np.uint16]
    voiced: npt.NDArray[np.bool_]
    # where frame 0's window begins in the clip it was taken from (a whole prompt's print
    # starts at its first voiced window, not at the clip's first sample)
    start_sample: int = 0

    @property
    def frames(self) -> int:
        return int(self.bits.size)

    @property
    def duration_ms(self) -> float:
        return self.frames * HOP_MS


def fingerprint(samples: npt.NDArray[np.int16]) -> Fingerprint:
    """The fingerprint of a whole clip (a prompt's audio), silent lead and tail trimmed."""
    energies, level = _band_energies(samples)
    if energies.shape[0] < 2:
        return Fingerprint(np.zeros(0, np.uint16), np.zeros(0, bool))
    bits = _bits(energies[1:], energies[0])
    voiced = level[1:] > SILENCE_DBFS
    idx = np.flatnonzero(voiced)
    if idx.size == 0:
        return Fingerprint(np.zeros(0, np.uint16), np.zeros(0, bool))
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    # bits[j] and voiced[j] are of window j + 1 (window 0 only seeds the differences)
    return Fingerprint(bits[lo:hi].copy(), voiced[lo:hi].copy(), (lo + 1) * HOP_SAMPLES)


class StreamFingerprint:
    """The fingerprint of audio that arrives in pieces (what a call hears), frame by frame.

    :meth:`feed` takes samples in order; :attr:`bits` and :attr:`level_dbfs` grow by one
    entry per ``HOP_SAMPLES``; frame ``i`` covers samples from ``i * HOP_SAMPLES`` of the
    stream. Fed in batches (a poll every ~100 ms), not per sample; what was fed is analysed
    when it is first read (:attr:`frames`, :attr:`bits`, ...), in one pass however many
    batches came since (each pass has a fixed cost: a call's pump feeds twice as often as a
    step reads).
    """

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.int16)
        self._unfed: list[npt.NDArray[np.int16]] = []
        self._previous: npt.NDArray[np.float64] | None = None
        self._bit_parts: list[npt.NDArray[np.uint16]] = []
        self._level_parts: list[npt.NDArray[np.float64]] = []
        self._bits = np.zeros(0, np.uint16)
        self._levels = np.zeros(0)
        self._quiet = np.zeros(0, bool)
        self._joined = 0  # frames in _bits/_levels/_quiet (their capacity may be larger)
        self._frames = 0

    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        if samples.size:
            self._unfed.append(samples)

    @property
    def frames(self) -> int:
        self._analyse()
        return self._frames

    def _analyse(self) -> None:
        if not self._unfed:
            return
        buf = np.concatenate([self._pending, *self._unfed]) if self._pending.size or \
            len(self._unfed) > 1 else self._unfed[0]
        self._unfed = []
        energies, level = _band_energies(buf, skip_quiet=True)
        n = energies.shape[0]
        if n == 0:
            self._pending = buf.copy()
            return
        if self._previous is None:
            self._previous = energies[0]
        self._bit_parts.append(_bits(energies, self._previous))
        self._level_parts.append(level)
        self._previous = energies[-1]
        self._pending = buf[n * HOP_SAMPLES:].copy()
        self._frames += n

    def _join(self) -> None:
        """Move the fed parts into the arrays, which grow by doubling: joining is then
        proportional to what was fed since, not to the whole call (it runs every poll)."""
        self._analyse()
        if not self._bit_parts:
            return
        if self._frames > self._bits.size:
            cap = max(self._frames, 2 * self._bits.size, 1024)
            for name in ("_bits", "_levels", "_quiet"):
                old = getattr(self, name)
                new = np.empty(cap, old.dtype)
                new[: self._joined] = old[: self._joined]
                setattr(self, name, new)
        at = self._joined
        for bits, level in zip(self._bit_parts, self._level_parts, strict=True):
            self._bits[at: at + bits.size] = bits
            self._levels[at: at + bits.size] = level
            self._quiet[at: at + bits.size] = level < HEARD_SILENCE_DBFS
            at += bits.size
        self._joined = at
        self._bit_parts, self._level_parts = [], []

    @property
    def bits(self) -> npt.NDArray[np.uint16]:
        self._join()
        return self._bits[: self._frames]

    @property
    def level_dbfs(self) -> npt.NDArray[np.float64]:
        self._join()
        return self._levels[: self._frames]

    @property
    def quiet(self) -> npt.NDArray[np.bool_]:
        """Per frame: below :data:`HEARD_SILENCE_DBFS` (scored as all bits wrong)."""
        self._join()
        return self._quiet[: self._frames]


@dataclass(frozen=True)
class Match:
    """Where a prompt was found: first frame in the stream, and the bit error rate there."""

    frame: int
    ber: float


def _windows(x: npt.NDArray[Any], m: int) -> npt.NDArray[Any]:
    """Read-only view of every run of ``m`` consecutive items of the 1-D ``x`` (as numpy's
    sliding_window_view, without its argument checks: this runs per poll per prompt)."""
    n = x.shape[0] - m + 1
    step = x.strides[0]
    return np.lib.stride_tricks.as_strided(x, (n, m), (step, step), writeable=False)


def _errors_by_offset(bits: npt.NDArray[np.uint16], quiet: npt.NDArray[np.bool_],
                      prompt: Fingerprint, lo: int, hi: int) -> npt.NDArray[np.int64]:
    """Wrong bits (over the prompt's voiced frames) at offsets ``lo..hi-1``; offsets out of
    the stream count every bit wrong."""
    m = prompt.frames
    out = np.full(max(0, hi - lo), int(prompt.voiced.sum()) * BITS, dtype=np.int64)
    a, b = max(lo, 0), min(hi, bits.size - m + 1)
    if b > a:
        windows = _windows(bits[a: b + m - 1], m)
        errors = popcount(windows ^ prompt.bits[None, :]).astype(np.int32)
        errors[_windows(quiet[a: b + m - 1], m)] = BITS
        out[a - lo: b - lo] = errors[:, prompt.voiced].sum(axis=1)
    return out


# A prompt longer than this is matched a chunk at a time, each chunk free to slip up to
# SLIP_FRAMES from where the first one puts it: a frame the caller's clock dropped (a busy
# machine, a jitter-buffer reset) must not turn the rest of a long prompt into a mismatch.
CHUNK_FRAMES = 125  # 0.5 s
SLIP_FRAMES = 25  # 100 ms


# A prompt may have begun this long before the stream did (the ear is attached a moment after
# the media is up, and an IVR plays at once): offsets down to -EARLY_FRAMES are scored on
# the part of the prompt that was heard, if that holds MIN_HEARD_SHARE of its voiced frames.
EARLY_FRAMES = 75  # 300 ms
MIN_HEARD_SHARE = 0.7


def _ber_early(heard: StreamFingerprint, prompt: Fingerprint, start: int, stop: int
               ) -> npt.NDArray[np.float64]:
    """BER of ``prompt`` begun ``-o`` frames before the stream, for each offset ``o`` in
    ``[start, stop)`` (all negative), over what was heard of it; 1.0 where that holds under
    MIN_HEARD_SHARE of the prompt's voiced frames. All offsets at once: the stream is padded
    in front with frames that count neither as errors nor as voiced."""
    m = prompt.frames
    if stop <= start or heard.frames < m:
        return np.zeros(0)
    pad = -start
    bits = np.concatenate((np.zeros(pad, np.uint16), heard.bits[:m]))
    quiet = np.concatenate((np.zeros(pad, bool), heard.quiet[:m]))
    heard_mask = np.concatenate((np.zeros(pad, bool), np.ones(m, bool)))
    k = stop - start  # offsets start..stop-1 are windows 0..k-1 of the padded stream
    win = _windows(bits, m)[:k]
    counted = _windows(heard_mask, m)[:k] & prompt.voiced[None, :]
    errors = np.where(_windows(quiet, m)[:k], BITS, popcount(win ^ prompt.bits[None, :]))
    wrong = (errors * counted).sum(axis=1)
    voiced = counted.sum(axis=1)
    enough = voiced >= MIN_HEARD_SHARE * int(prompt.voiced.sum())
    return np.where(enough, wrong / np.maximum(voiced * BITS, 1), 1.0)


def ber_by_offset(heard: StreamFingerprint, prompt: Fingerprint, start: int = 0,
                  stop: int | None = None) -> npt.NDArray[np.float64]:
    """BER of ``prompt`` at each offset of ``heard`` in ``[start, stop)`` where it fits whole
    (fewer offsets when the stream is not that long yet); a negative ``start`` (not below
    -EARLY_FRAMES) scores a prompt that began before the stream on what was heard of it."""
    if start < 0:
        if prompt.frames > heard.frames:
            return np.zeros(0)
        end = 0 if stop is None else min(0, stop)
        early = _ber_early(heard, prompt, max(start, -EARLY_FRAMES), end)
        if stop is not None and stop <= 0:
            return early
        return np.concatenate((early, ber_by_offset(heard, prompt, 0, stop)))
    m = prompt.frames
    voiced = int(prompt.voiced.sum())
    bits, quiet = heard.bits, heard.quiet
    last = bits.size - m + 1  # offsets where the prompt fits
    stop = last if stop is None else min(stop, last)
    if m == 0 or voiced == 0 or stop <= start:
        return np.zeros(0)
    if m < 2 * CHUNK_FRAMES:
        return _errors_by_offset(bits, quiet, prompt, start, stop) / (voiced * BITS)
    total = np.zeros(stop - start, dtype=np.int64)
    for a in range(0, m, CHUNK_FRAMES):
        chunk = Fingerprint(prompt.bits[a: a + CHUNK_FRAMES], prompt.voiced[a: a + CHUNK_FRAMES])
        if not chunk.voiced.any():
            continue
        if a == 0:  # the first chunk anchors the offset
            total += _errors_by_offset(bits, quiet, chunk, start, stop)
            continue
        e = _errors_by_offset(bits, quiet, chunk, start + a - SLIP_FRAMES,
                              stop + a + SLIP_FRAMES)
        total += _windows(e, 2 * SLIP_FRAMES + 1).min(axis=1)
    return np.asarray(total / (voiced * BITS), dtype=np.float64)


# Once a BER under the threshold is seen, the best offset is looked for this far on (100 ms).
REFINE_FRAMES = 25


def ber_at(heard: StreamFingerprint, prompt: Fingerprint, frame: int, slack: int = REFINE_FRAMES
           ) -> float:
    """The lowest BER of ``prompt`` within ``slack`` frames of ``frame`` (1.0: does not fit)."""
    ber = ber_by_offset(heard, prompt, max(0, frame - slack), frame + slack + 1)
    return float(ber.min()) if ber.size else 1.0
