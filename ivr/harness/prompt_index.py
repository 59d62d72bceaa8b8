"""The prompt sets a harness call can recognise: their texts and audio fingerprints.

Loaded from a prompts directory (``prompts/<language>/manifest.yaml`` and its WAVs, as the
stack loads them): a set dropped there is recognised on the next run, no training step.
``resolve_text`` turns the text of an ``expect_prompt: {text: ...}`` step into candidate
prompts by text similarity; the audio decides between them (``identify``).

:class:`Transcriber` is the hook for a speech recogniser (issue 21): given what was heard it
returns a transcript; a text step then also passes when the transcript is similar enough.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import yaml

from ivr.speech.recognizer import Hypothesis
from media.pcm import read_wav_mono16, resample, sound_start

from .fingerprint import (
    BITS,
    CHUNK_FRAMES,
    HOP_MS,
    SAMPLE_RATE_HZ,
    Fingerprint,
    StreamFingerprint,
    ber_at,
    ber_by_offset,
    fingerprint,
    popcount,
)
from .print_cache import PrintCache, wav_key
from .search import OPENING_BER


class PromptSetError(Exception):
    """A prompts directory the harness cannot read; the message names the file."""


class Transcriber(Protocol):
    """Speech to text for text steps: 16-bit mono PCM at ``sample_rate_hz`` in, transcript
    out (None: nothing recognised). Wire a recogniser by passing one to ``run``."""

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate_hz: int) -> str | None: ...

    def hears(self, pcm: npt.NDArray[np.int16], sample_rate_hz: int, text: str
              ) -> Hypothesis | None:
        """The best transcript when ``text`` is what was expected (text steps whose text is
        no prompt of the sets): :class:`ivr.harness.transcribe.RecognizerTranscriber`."""
        ...


@dataclass(frozen=True)
class KnownPrompt:
    set: str
    name: str
    text: str
    print: Fingerprint
    sound_sample: int = 0  # where the prompt's sound begins (media.pcm.sound_start)

    @property
    def key(self) -> str:
        return f"{self.set}:{self.name}"

    @property
    def sound_lead_samples(self) -> int:
        """How many samples before the print's frame 0 the prompt's sound begins: a call
        hears the sound begin that long before the place where the prompt matched."""
        return self.print.start_sample - self.sound_sample


_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
          "6": "six", "7": "seven", "8": "eight", "9": "nine", "*": "star", "#": "pound"}


def words(text: str) -> list[str]:
    """Lower-case words, digits spelt out ("press 2" and "press two" read the same)."""
    spaced = re.sub(r"([0-9*#])", lambda m: f" {_WORDS[m.group(1)]} ", text.lower())
    return re.findall(r"[^\W_]+", spaced)


def text_similarity(query: str, text: str) -> float:
    """0..1: how well ``query`` reads as (a part of) ``text``: the best ratio of the query's
    words against any run of the text's words as long as the query."""
    q, t = words(query), words(text)
    if not q or not t:
        return 0.0
    n = len(q)
    if len(t) <= n:
        return difflib.SequenceMatcher(None, q, t).ratio()
    return max(difflib.SequenceMatcher(None, q, t[i: i + n]).ratio()
               for i in range(len(t) - n + 1))


class PromptIndex:
    """Every prompt of every set under a prompts directory."""

    def __init__(self, prompts: list[KnownPrompt]) -> None:
        self.prompts = prompts
        self._by_key = {p.key: p for p in prompts}
        # the opening CHUNK_FRAMES of every prompt that long, stacked: best_at scores them
        # all at once and fully scores only those whose opening fits (a twin shares it)
        self._long = [i for i, p in enumerate(prompts) if p.print.frames >= CHUNK_FRAMES
                      and p.print.voiced[:CHUNK_FRAMES].any()]
        self._head_bits = np.array([prompts[i].print.bits[:CHUNK_FRAMES] for i in self._long],
                                   dtype=np.uint16).reshape(len(self._long), CHUNK_FRAMES)
        self._head_voiced = np.array(
            [prompts[i].print.voiced[:CHUNK_FRAMES] for i in self._long],
            dtype=bool).reshape(len(self._long), CHUNK_FRAMES)

    @classmethod
    def load(cls, prompts_dir: Path, cache_dir: Path | None = None) -> PromptIndex:
        """The sets under ``prompts_dir``; with ``cache_dir``, fingerprints of WAVs that did
        not change since the last load are read from there (:mod:`.print_cache`)."""
        if not prompts_dir.is_dir():
            raise PromptSetError(f"{prompts_dir}: no such prompts directory")
        found: list[KnownPrompt] = []
        for manifest in sorted(prompts_dir.glob("*/manifest.yaml")):
            found.extend(_load_set(manifest, PrintCache(cache_dir, manifest)))
        if not found:
            raise PromptSetError(f"{prompts_dir}: no prompt sets (*/manifest.yaml)")
        return cls(found)

    def sets(self) -> set[str]:
        return {p.set for p in self.prompts}

    def get(self, set_name: str, name: str) -> KnownPrompt | None:
        return self._by_key.get(f"{set_name}:{name}")

    def resolve_text(self, query: str, min_confidence: float) -> list[tuple[float, KnownPrompt]]:
        """Prompts whose text reads like ``query`` (similarity >= ``min_confidence``), best
        first."""
        scored = [(text_similarity(query, p.text), p) for p in self.prompts if p.text]
        return sorted(((s, p) for s, p in scored if s >= min_confidence),
                      key=lambda sp: -sp[0])

    def best_at(self, heard: StreamFingerprint, frame: int, slack: int = 25,
                length_frames: int | None = None) -> tuple[float, KnownPrompt] | None:
        """The known prompt that fits the audio at ``frame`` best (lowest BER), among those
        of about ``length_frames`` (within 30 %) when given."""
        best: tuple[float, KnownPrompt] | None = None
        alike = [i for i, p in enumerate(self.prompts) if not length_frames
                 or abs(p.print.frames - length_frames) <= 0.3 * length_frames]
        skip = self._openings_off(heard, frame, slack, alike)
        for i in alike:
            p = self.prompts[i]
            if i in skip:
                continue
            ber = ber_at(heard, p.print, frame, slack)
            if best is None or ber < best[0]:
                best = (ber, p)
        return best

    def _openings_off(self, heard: StreamFingerprint, frame: int, slack: int,
                      among: list[int]) -> set[int]:
        """Prompts (by position, of those ``among``) whose opening BER is above
        :data:`OPENING_BER` at every offset within ``slack`` of ``frame``: they cannot be the
        audio there (vectorised over those prompts; the whole-prompt BER is computed for the
        rest only)."""
        lo = max(0, frame - slack)
        hi = min(frame + slack + 1, heard.frames - CHUNK_FRAMES + 1)
        wanted = set(among)
        rows = [k for k, i in enumerate(self._long) if i in wanted]
        if hi <= lo or not rows:
            return set()
        head_bits, head_voiced = self._head_bits[rows], self._head_voiced[rows]
        bits = heard.bits[lo: hi + CHUNK_FRAMES - 1]
        quiet = heard.quiet[lo: hi + CHUNK_FRAMES - 1]
        windows = np.lib.stride_tricks.sliding_window_view(bits, CHUNK_FRAMES)  # K x C
        quiet_w = np.lib.stride_tricks.sliding_window_view(quiet, CHUNK_FRAMES)
        errors = popcount(windows[None, :, :] ^ head_bits[:, None, :])  # P x K x C
        errors = np.where(quiet_w[None, :, :], BITS, errors) * head_voiced[:, None, :]
        ber = errors.sum(axis=2) / (head_voiced.sum(axis=1)[:, None] * BITS)
        off = np.flatnonzero(ber.min(axis=1) > OPENING_BER)
        return {self._long[rows[int(k)]] for k in off}

    def identify(self, heard: StreamFingerprint, start: int, max_ber: float
                 ) -> list[tuple[int, str]]:
        """Prompts heard from frame ``start`` on, in order, as "set:name" (longest first
        where they overlap; "(first N.N s)" for a prompt cut short by the end of what was
        heard): what a failed step reports as heard instead."""
        hits: list[tuple[int, int, str]] = []
        for p in self.prompts:
            ber = ber_by_offset(heard, p.print, start)
            if ber.size and ber.min() < max_ber:
                hits.append((start + int(np.argmin(ber)), p.print.frames, p.key))
                continue
            # cut short by the end of what was heard: its first second, where the rest
            # would run past the end
            if p.print.frames <= MIN_PART_FRAMES:
                continue
            head = Fingerprint(p.print.bits[:MIN_PART_FRAMES], p.print.voiced[:MIN_PART_FRAMES])
            tail_from = max(start, heard.frames - p.print.frames + 1)
            ber = ber_by_offset(heard, head, tail_from)
            if ber.size and ber.min() < max_ber:
                at = tail_from + int(np.argmin(ber))
                n = heard.frames - at
                hits.append((at, n, f"{p.key} (first {n * HOP_MS / 1000:.1f} s)"))
        hits.sort(key=lambda h: (-h[1], h[0]))
        kept: list[tuple[int, int, str]] = []
        for frame, length, label in hits:  # drop prompts heard inside a longer one
            if any(f <= frame + 25 and frame + length <= f + n + 25 for f, n, _ in kept):
                continue
            kept.append((frame, length, label))
        return [(f, label) for f, _, label in sorted(kept)]


MIN_PART_FRAMES = 250  # a prompt's first second is enough to name it
# A prompt whose first CHUNK_FRAMES (0.5 s) are this far off the audio is not its twin
# (search.OPENING_BER, imported above).


def _load_set(manifest: Path, cache: PrintCache) -> list[KnownPrompt]:
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptSetError(f"{manifest}: cannot read the manifest: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        raise PromptSetError(f"{manifest}: no 'prompts' mapping")
    set_name = str(data.get("language") or manifest.parent.name)
    out = []
    keys: set[str] = set()
    for name, entry in data["prompts"].items():
        if not isinstance(entry, dict) or "file" not in entry:
            continue
        wav = manifest.parent / str(entry["file"])
        key = wav_key(wav)
        keys.add(key)
        cached = cache.get(key)
        if cached is None:
            try:
                pcm, rate = read_wav_mono16(wav)
            except (OSError, ValueError) as exc:
                raise PromptSetError(f"{wav}: cannot read prompt {name!r}: {exc}") from exc
            if rate != SAMPLE_RATE_HZ:
                pcm = resample(pcm, rate, SAMPLE_RATE_HZ)
            cached = fingerprint(pcm), sound_start(pcm, SAMPLE_RATE_HZ)
            cache.put(key, *cached)
        text = str(entry.get("text") or "")
        out.append(KnownPrompt(set_name, str(name), text, *cached))
    cache.save(keys)
    return out
