"""In-band DTMF detection: DTMF tone pairs carried inside G.711 audio.

PJSIP reports RFC 4733 telephone-events and SIP INFO digits, but has no detector for digits
that arrive as audio. This module is that detector: pure numpy, fed with 8 kHz mono int16
frames copied off a media tap, in chunks of any length (state is kept across calls).

Standards
---------
* ITU-T Q.23 (technical features of push-button telephone sets) fixes the signal: one
  frequency of the low ("row") group 697/770/852/941 Hz plus one of the high ("column")
  group 1209/1336/1477/1633 Hz, each within +-1.8 % of nominal.
* ITU-T Q.24 (multifrequency push-button signal reception) and Bellcore/Telcordia GR-506
  fix what a receiver must do, and this detector is built against those figures:

  - frequency: operate for a deviation of +-1.5 % and must not operate for +-3.5 %; the
    acceptance limit here is +-2.5 % on each of the two tones (``_MAX_FREQ_DEVIATION``);
  - duration: a signal of 40 ms or more must be recognised, one of 20 ms or less must not
    (a digit is reported after ``_CONFIRM_DECISIONS`` consecutive valid decisions: a tone
    of 24 ms or less is never reported, one of 30 ms or more always is, whatever its
    alignment to the analysis frames);
  - interdigit pause: a pause of 40 ms must separate two digits (the tone is declared over
    after ``_GAP_DECISIONS`` non-matching decisions, 12 ms);
  - twist (level difference between the groups): Q.24 leaves the limits to the
    administrations (typically "normal" 4 dB and "reverse" 8 dB, and which group is which
    sign differs between texts), so this detector accepts up to 10 dB either way: that
    covers both readings of "+8 dB / -4 dB", with 2 dB for the measuring error a 8 dB twist
    shows in 15 dB of noise (the weaker tone's power then wanders by +-1.3 dB), and
    refuses larger differences (12 dB and more);
  - level: operates down to -25 dBm0 per tone with margin (floor ``_MIN_TONE_DBM0``).

Method
------
The signal is cut into analysis frames of 20 ms (160 samples at 8 kHz) every 4 ms (32
samples). For each frame a windowed Goertzel, i.e. the DFT evaluated at exactly the eight
DTMF frequencies, is computed for all frames of a chunk at once as one matrix product (the
Goertzel recursion and this closed form give the same value; the matrix form avoids a
Python loop per sample). Choices and why:

* 160-sample Hann frames: the Hann window keeps the other group's tone 50+ dB down (the
  closest row/column pair, 941/1209 Hz, is 268 Hz = 5.4 bins apart), so the phase and power
  of each bin see one tone only, whatever the twist; its main lobe (+-100 Hz) still puts
  the neighbouring row (73 Hz away) 14 dB down, and 9 dB down for a tone 1.5 % off towards
  it, enough for the in-group test.
* 4 ms hop: the frame length is set by frequency resolution, the hop by time resolution.
  Requiring ``_CONFIRM_DECISIONS`` = 3 decisions (4 consecutive valid frames) needs 160 +
  3 x 32 = 256 samples of tone plus at most 31 of alignment slack = 36 ms < 40 ms, while a
  20 ms tone (160 samples) can fill at most two frames (a frame is only valid if the tone
  fills it, see the quarter test below), so it is never reported.
* Frequency deviation by phase, not by magnitude: with any block short enough for the
  duration rules, a 3.5 % deviation at 697 Hz (24 Hz) stays inside the main lobe and costs
  under 1.5 dB, so no magnitude ratio can separate 1.5 % from 3.5 %. The phase of the same
  bin in two frames one hop apart advances by ``2 pi df hop / fs`` for a tone ``df`` off
  the bin, which measures the deviation directly (an exact phase-vocoder estimate).

Per frame, a frame is valid for a digit when:

1. the strongest row and the strongest column each exceed ``_MIN_TONE_DBM0``;
2. each is ``_MIN_GROUP_MARGIN_DB`` above the second strongest frequency of its group;
3. the twist is within ``-_MAX_LOW_OVER_HIGH_DB .. +_MAX_HIGH_OVER_LOW_DB``;
4. the two tones carry at least ``_MIN_TONE_SHARE`` of the frame's (windowed) power: the
   main talk-off guard, speech and music spread their power over many frequencies;
5. the raw power of each quarter of the frame is at least ``_MIN_QUARTER_RATIO`` of the
   mean: the tone fills the whole frame (sharp time edges for the duration rules).

A decision is made every hop from two consecutive frames: both valid for the same digit,
both tones within ``_MAX_FREQ_DEVIATION`` of nominal by the phase test, and the column tone
not the second harmonic of the row tone (``_MIN_HARMONIC_DISTANCE``; a note and its octave
is common in music and no genuine pair is within 1.2 % of that relation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DTMF_DIGITS", "DetectedDigit", "InbandDtmfDetector", "goertzel_power"]

DTMF_DIGITS = "123A456B789C*0#D"
"""Digits in keypad order: index = 4 * row + column."""

ROW_FREQS_HZ = (697.0, 770.0, 852.0, 941.0)
COL_FREQS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
_DTMF_FREQS_HZ = np.array(ROW_FREQS_HZ + COL_FREQS_HZ, dtype=np.float64)

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

# --- timing -----------------------------------------------------------------------------
_FRAME_MS = 20.0  # analysis frame (160 samples at 8 kHz)
_HOP_MS = 4.0  # frame advance (32 samples at 8 kHz)
_CONFIRM_DECISIONS = 3  # consecutive valid decisions (4 frames) before a digit is "on"
_GAP_DECISIONS = 3  # non-matching decisions (12 ms) that end a digit
_EDGE_ALLOWANCE_MS = 1.5  # measured: a frame passes with ~1.5 ms of its edge not yet in tone

# --- validation thresholds --------------------------------------------------------------
# Mean power of a 0 dBm0 sine, full scale = 1.0 (a full-scale square wave has power 1): G.711
# mu-law puts the full-scale sine at +3.17 dBm0, so 0 dBm0 has amplitude 10^(-3.17/20).
_DBM0_REF_POWER = 0.5 * 10.0 ** (-3.17 / 10.0)
_MIN_TONE_DBM0 = -36.0  # per tone; Q.24 receivers must operate at -25 dBm0 per tone
_MIN_GROUP_MARGIN_DB = 6.0  # strongest frequency over the next one in the same group
_MAX_HIGH_OVER_LOW_DB = 10.0  # column (high group) louder than row
_MAX_LOW_OVER_HIGH_DB = 10.0  # row (low group) louder than column
_MIN_TONE_SHARE = 0.7  # (row + column power) / frame power
_MIN_QUARTER_RATIO = 0.35  # weakest quarter of the frame / mean quarter (raw power)
_MAX_FREQ_DEVIATION = 0.025  # relative, per tone: accept 1.5 %, refuse 3.5 %
# Second-harmonic guard: refuse a column tone within 0.8 % of twice the row tone (a note and
# its octave, common in music). Genuine pairs off by up to 1.5 % each stay >= 1.2 % away
# (697/1336, 770/1477 and 852/1633 Hz are the closest, at 4.3 %).
_MIN_HARMONIC_DISTANCE = 0.008


@dataclass(frozen=True)
class DetectedDigit:
    """One recognised DTMF digit."""

    digit: str
    """One of :data:`DTMF_DIGITS`."""
    start_sample: int
    """Where the tone began, in samples since the detector was created or reset."""
    duration_ms: float
    """How long the tone lasted (measured to the hop, 4 ms)."""


def _dft_basis(n: int, freqs_hz: FloatArray, sample_rate_hz: int, window: FloatArray) -> FloatArray:
    """Real matrix ``(n, 2k)``: windowed cosines then sines at ``freqs_hz``."""
    omega = 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / float(sample_rate_hz)
    phase = np.outer(np.arange(n, dtype=np.float64), omega)
    return np.concatenate([np.cos(phase), np.sin(phase)], axis=1) * window[:, None]


def goertzel_power(block: np.ndarray, freqs_hz: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Power of each of ``freqs_hz`` in ``block``, as the Goertzel algorithm computes it.

    The Goertzel recursion over N samples ends with ``|sum x[n] exp(-j w n)|^2``, the DFT
    power at ``w = 2 pi f / fs`` for any (not necessarily integer-bin) ``f``; this evaluates
    that closed form as one matrix product instead of a per-sample loop. ``block`` may be
    1-D (N,) or hold several blocks (..., N); the result has shape (..., len(freqs_hz)),
    float64, in squared input units (a sine of amplitude A on a bin gives ``(A N / 2)^2``).
    """
    x = np.asarray(block, dtype=np.float64)
    freqs = np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64))
    n = x.shape[-1]
    basis = _dft_basis(n, freqs, sample_rate_hz, np.ones(n, dtype=np.float64))
    re_im = x @ basis
    k = freqs.size
    power: np.ndarray = re_im[..., :k] ** 2 + re_im[..., k:] ** 2
    return power


class InbandDtmfDetector:
    """Streaming in-band DTMF detector (see the module docstring for the method).

    Feed :meth:`process` with consecutive mono chunks of any length; int16 (or other
    integer) samples are scaled by 1/32768, float samples are taken as already normalised
    to +-1.0 full scale. Each call returns the digits whose tone ended within the chunk
    (a tone is over once ``_GAP_DECISIONS`` hops, 12 ms, have not matched it); call
    :meth:`flush` at the end of the stream for a tone still on.
    """

    def __init__(self, sample_rate_hz: int = 8000) -> None:
        if sample_rate_hz < 2 * 1800:
            raise ValueError(f"sample rate {sample_rate_hz} Hz cannot carry DTMF")
        self.sample_rate_hz = sample_rate_hz
        self._frame_len = int(round(_FRAME_MS * sample_rate_hz / 1000.0))
        self._hop = int(round(_HOP_MS * sample_rate_hz / 1000.0))
        n = self._frame_len
        # Hann without the zero end points (periodic-style), so every sample counts.
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(n) + 0.5) / n)
        self._basis = _dft_basis(n, _DTMF_FREQS_HZ, sample_rate_hz, window)
        self._window_sq = window**2
        self._quarter_starts = (np.arange(4) * n) // 4
        # Normalisation so that a sine of mean power P on a bin reads P, and so does the
        # windowed mean power of the frame: P_bin = 2 |X|^2 / (sum w)^2, P_frame =
        # sum (w x)^2 / sum w^2.
        self._bin_scale = 2.0 / float(window.sum()) ** 2
        self._frame_scale = 1.0 / float(self._window_sq.sum())
        # Phase advance of each bin over one hop, removed before comparing frames.
        omega = 2.0 * np.pi * _DTMF_FREQS_HZ / sample_rate_hz
        self._hop_rotation: ComplexArray = np.exp(-1j * omega * self._hop)
        self._max_dphi = (
            2.0 * np.pi * _MAX_FREQ_DEVIATION * _DTMF_FREQS_HZ * self._hop / (sample_rate_hz)
        )
        self._edge = int(round(_EDGE_ALLOWANCE_MS * sample_rate_hz / 1000.0))
        self._hz_per_rad = sample_rate_hz / (2.0 * np.pi * self._hop)
        self._min_tone_power = _DBM0_REF_POWER * 10.0 ** (_MIN_TONE_DBM0 / 10.0)
        self._group_margin = 10.0 ** (_MIN_GROUP_MARGIN_DB / 10.0)
        self._max_high_over_low = 10.0 ** (_MAX_HIGH_OVER_LOW_DB / 10.0)
        self._max_low_over_high = 10.0 ** (_MAX_LOW_OVER_HIGH_DB / 10.0)
        self.reset()

    # --- public API ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all audio and any tone in progress; sample offsets restart at 0."""
        self._buf: FloatArray = np.zeros(0, dtype=np.float64)
        self._next_frame = 0  # index of the next frame to analyse (starts at frame * hop)
        self._prev_x: ComplexArray | None = None  # spectrum of the last analysed frame
        self._prev_digit = -1  # its per-frame digit, -1 when invalid
        self._cur = -1  # digit being tracked (candidate or on)
        self._on = False
        self._run = 0  # consecutive valid decisions for the candidate
        self._first = 0  # first decision of the current tone
        self._last = 0  # last decision that matched it
        self._gap = 0  # non-matching decisions since then

    def process(self, samples: np.ndarray) -> list[DetectedDigit]:
        """Analyse the next chunk; return the digits whose tone ended within it."""
        x = np.asarray(samples)
        chunk = x.reshape(-1).astype(np.float64)
        if np.issubdtype(x.dtype, np.integer):
            chunk *= 1.0 / 32768.0
        buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk
        n, hop = self._frame_len, self._hop
        if buf.size < n:
            self._buf = buf.copy()
            return []
        n_frames = (buf.size - n) // hop + 1
        step = buf.strides[0]  # read-only strided view: frame i = buf[i hop : i hop + n]
        frames = np.lib.stride_tricks.as_strided(
            buf, shape=(n_frames, n), strides=(hop * step, step), writeable=False
        )
        self._buf = buf[n_frames * hop :].copy()
        first_frame = self._next_frame
        self._next_frame += n_frames
        spectra, digits = self._analyse(frames)
        decisions = self._decide(spectra, digits)
        return self._track(decisions, first_frame)

    def flush(self) -> list[DetectedDigit]:
        """End of stream: report a tone that is still on (and stop tracking it)."""
        out: list[DetectedDigit] = []
        if self._on:
            out.append(self._report())
        self._cur, self._on, self._run, self._gap = -1, False, 0, 0
        return out

    # --- internals ----------------------------------------------------------------------

    def _analyse(self, frames: FloatArray) -> tuple[ComplexArray, npt.NDArray[np.int64]]:
        """Spectra (n, 8) and per-frame digit index (-1 when the frame is not a DTMF pair)."""
        k = _DTMF_FREQS_HZ.size
        re_im = frames @ self._basis
        spectra: ComplexArray = re_im[:, :k] - 1j * re_im[:, k:]
        power = (re_im[:, :k] ** 2 + re_im[:, k:] ** 2) * self._bin_scale
        rows, cols = power[:, :4], power[:, 4:]
        best_row = np.argmax(rows, axis=1)
        best_col = np.argmax(cols, axis=1)
        idx = np.arange(power.shape[0])
        p_row = rows[idx, best_row]
        p_col = cols[idx, best_col]
        # Second strongest in each group: partition on the two largest.
        second_row = np.partition(rows, 2, axis=1)[:, 2]
        second_col = np.partition(cols, 2, axis=1)[:, 2]
        frame_power = (frames**2) @ self._window_sq * self._frame_scale
        quarters = np.add.reduceat(frames**2, self._quarter_starts, axis=1)
        ok = (
            (p_row >= self._min_tone_power)
            & (p_col >= self._min_tone_power)
            & (p_row >= self._group_margin * second_row)
            & (p_col >= self._group_margin * second_col)
            & (p_col <= self._max_high_over_low * p_row)
            & (p_row <= self._max_low_over_high * p_col)
            & (p_row + p_col >= _MIN_TONE_SHARE * frame_power)
            & (4.0 * quarters.min(axis=1) >= _MIN_QUARTER_RATIO * quarters.sum(axis=1))
        )
        digits = np.where(ok, 4 * best_row + best_col, -1).astype(np.int64)
        return spectra, digits

    def _decide(
        self, spectra: ComplexArray, digits: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Per frame: the digit if this frame and the previous one agree and pass the
        frequency (phase advance) test, else -1."""
        if self._prev_x is None:  # very first frame: nothing to compare with
            prev_x = np.vstack([spectra[:1], spectra[:-1]])
            prev_d = np.concatenate([[-1], digits[:-1]])
        else:
            prev_x = np.vstack([self._prev_x[None, :], spectra[:-1]])
            prev_d = np.concatenate([[self._prev_digit], digits[:-1]])
        self._prev_x = spectra[-1].copy()
        self._prev_digit = int(digits[-1])
        cur_x, cur_d = spectra, digits
        same = (cur_d >= 0) & (cur_d == prev_d)
        if not same.any():  # the usual case (speech, silence): skip the phase work
            return np.full(cur_d.shape, -1, dtype=np.int64)
        d = np.where(same, cur_d, 0)
        row, col = d // 4, 4 + d % 4
        idx = np.arange(cur_d.size)
        adv = cur_x * np.conj(prev_x) * self._hop_rotation
        dphi_row = np.angle(adv[idx, row])
        dphi_col = np.angle(adv[idx, col])
        # Measured frequencies: nominal + phase advance / (2 pi hop / fs).
        f_row = _DTMF_FREQS_HZ[row] + dphi_row * self._hz_per_rad
        f_col = _DTMF_FREQS_HZ[col] + dphi_col * self._hz_per_rad
        good = (
            same
            & (np.abs(dphi_row) <= self._max_dphi[row])
            & (np.abs(dphi_col) <= self._max_dphi[col])
            & (np.abs(2.0 * f_row - f_col) >= _MIN_HARMONIC_DISTANCE * f_col)
        )
        decisions: npt.NDArray[np.int64] = np.where(good, cur_d, -1)
        return decisions

    def _track(self, decisions: npt.NDArray[np.int64], first_frame: int) -> list[DetectedDigit]:
        """Duration state machine over the decisions (one per frame, in order)."""
        out: list[DetectedDigit] = []
        for i, dig in enumerate(decisions.tolist()):
            k = first_frame + i
            if dig >= 0 and dig == self._cur:
                if self._on:
                    self._last, self._gap = k, 0
                else:
                    self._run += 1
                    self._last = k
                    if self._run >= _CONFIRM_DECISIONS:
                        self._on = True
                continue
            if self._on:
                self._gap += 1
                if self._gap < _GAP_DECISIONS:
                    continue
                out.append(self._report())
                self._on = False
            # start a new candidate (or nothing)
            self._cur = dig
            self._run = 1 if dig >= 0 else 0
            self._first = self._last = k
            self._gap = 0
            if self._run >= _CONFIRM_DECISIONS:
                self._on = True
        return out

    def _report(self) -> DetectedDigit:
        # Decision k uses frames k-1 and k: samples [(k-1) hop, k hop + frame_len). Frames
        # pass slightly before the tone fills them (the quarter test tolerates a few missing
        # samples); the measured mean is ~1.5 ms at each edge, taken off here.
        start = (self._first - 1) * self._hop + self._edge
        end = self._last * self._hop + self._frame_len - self._edge
        return DetectedDigit(
            digit=DTMF_DIGITS[self._cur],
            start_sample=max(0, start),
            duration_ms=1000.0 * (end - start) / self.sample_rate_hz,
        )
