"""Finding one prompt in what a harness call hears, as it arrives (:class:`PromptSearch`).

The scoring is :mod:`ivr.harness.fingerprint`'s (:func:`~ivr.harness.fingerprint.ber_by_offset`);
this is the search over a growing stream: each offset scored once, a long prompt scored whole
only where its opening fits, the best offset near the first one under the threshold, and, once
the call is over, a prompt the hang-up cut short.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .fingerprint import (
    CHUNK_FRAMES,
    MATCH_BER,
    MIN_HEARD_SHARE,
    REFINE_FRAMES,
    Fingerprint,
    Match,
    StreamFingerprint,
    ber_by_offset,
)

# A prompt the call's end cut short by up to this much (200 ms: the ear's batch the bridge
# had not handed over yet, up to 80 ms, and what the jitter buffer held) is still found once
# the call is over, scored on what was heard of it (at least MIN_HEARD_SHARE of its voiced
# frames).
LATE_FRAMES = 50


# A prompt's opening (its first CHUNK_FRAMES, 0.5 s) this far off the audio at an offset: the
# prompt does not begin there. Unrelated audio scores near 0.5, a prompt against itself at
# most 0.15, with a frame lost in its opening about 0.3.
OPENING_BER = 0.4


class PromptSearch:
    """Looks for one prompt in a growing stream from frame ``start``, a few new offsets per
    :meth:`poll` (each offset is scored once). A prompt of two chunks or more is scored whole
    only at offsets where its opening fits (BER under :data:`OPENING_BER`); elsewhere its
    opening's BER stands for it (all above the threshold): most offsets then cost one chunk's
    scoring, not the whole prompt's with every chunk's slip."""

    def __init__(self, prompt: Fingerprint, start: int, max_ber: float = MATCH_BER) -> None:
        self.prompt = prompt
        self.start = start
        self.max_ber = max_ber
        self._next = start
        self._candidate: Match | None = None
        self.best_ber = 1.0  # lowest BER seen so far (opening BER where not scored whole)
        self._opening: Fingerprint | None = None
        self._screen = max(OPENING_BER, max_ber)
        if prompt.frames >= 2 * CHUNK_FRAMES and prompt.voiced[:CHUNK_FRAMES].any():
            self._opening = Fingerprint(prompt.bits[:CHUNK_FRAMES], prompt.voiced[:CHUNK_FRAMES])

    def _scores(self, heard: StreamFingerprint) -> npt.NDArray[np.float64]:
        """BER at each new offset where the prompt fits whole (see the class)."""
        if self._opening is None or self._next < 0:
            return ber_by_offset(heard, self.prompt, self._next)
        stop = heard.frames - self.prompt.frames + 1
        if stop <= self._next:
            return np.zeros(0)
        ber = ber_by_offset(heard, self._opening, self._next, stop)
        fits = np.flatnonzero(ber < self._screen)
        if fits.size:
            a, b = int(fits[0]), int(fits[-1]) + 1
            ber[a:b] = ber_by_offset(heard, self.prompt, self._next + a, self._next + b)
        return ber

    def poll(self, heard: StreamFingerprint, final: bool = False) -> Match | None:
        """The match once it is certain (the best offset near the first one under the
        threshold), else None. ``final``: the stream has ended (the call is over), so a
        match found is taken without waiting for the offsets after it."""
        ber = self._scores(heard)
        if ber.size == 0:
            if final and self._candidate is None:
                return self._cut_short(heard)
            return self._candidate if final else None
        base = self._next
        self._next += ber.size
        self.best_ber = min(self.best_ber, float(ber.min()))
        if self._candidate is None:
            below = np.flatnonzero(ber < self.max_ber)
            if below.size == 0:
                return self._cut_short(heard) if final else None
            k = int(below[0])
            self._candidate = Match(base + k, float(ber[k]))
        cand = self._candidate
        lo = max(0, cand.frame - base)
        hi = min(ber.size, cand.frame + REFINE_FRAMES - base)
        if lo < hi:
            k = lo + int(np.argmin(ber[lo:hi]))
            if ber[k] < cand.ber:
                self._candidate = cand = Match(base + k, float(ber[k]))
        if final or self._next >= cand.frame + REFINE_FRAMES:
            return cand
        return None

    def _cut_short(self, heard: StreamFingerprint) -> Match | None:
        """Once the call is over: the prompt as if it ended up to LATE_FRAMES early, at the
        end of what was heard. Each shortened prompt (every 2 frames, while it keeps
        MIN_HEARD_SHARE of the voiced frames) is scored where it ends in the last
        REFINE_FRAMES of the stream, chunk by chunk as a whole one (a frame dropped in it
        does not fail it); the lowest BER under the threshold wins."""
        p, start = self.prompt, max(self._next, 0)
        need = MIN_HEARD_SHARE * int(p.voiced.sum())
        best: Match | None = None
        for cut in range(1, LATE_FRAMES + 1, 2):
            m = p.frames - cut
            if m <= 0 or int(p.voiced[:m].sum()) < need:
                break
            lo = max(start, heard.frames - m + 1 - REFINE_FRAMES)
            ber = ber_by_offset(heard, Fingerprint(p.bits[:m], p.voiced[:m]), lo)
            if ber.size == 0:
                continue
            k = int(np.argmin(ber))
            if ber[k] < self.max_ber and (best is None or ber[k] < best.ber):
                best = Match(lo + k, float(ber[k]))
        return best
