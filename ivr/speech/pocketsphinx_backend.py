"""The PocketSphinx backend (the default): the English model its PyPI package ships, in
grammar mode, with a JSGF grammar built from the menu's phrases.

Audio handling, which is where stock PocketSphinx loses most on phone audio:

* the shipped acoustic model is for 16 kHz audio (its ``feat.params`` fixes filters up to
  6.8 kHz), so 8 kHz audio is upsampled by FFT zero-padding;
* a band above 4 kHz that is exactly zero, and digital silence around the words (a G.711
  encoder's idle code), give log filter energies of minus infinity that wreck cepstral mean
  normalisation and the search: white noise at -40 dBFS is added to the whole upsampled
  signal. On the repo's espeak-ng set a -60 dBFS fill took the grammar's exact-phrase rate
  from 24/33 to 31/33; -40 dBFS then took it (grammar alone, 7 phrases x 5 dev voices x 2
  speeds, clean and 20 dB SNR) from 129/140 to 139/140: the S of a word on an 8 kHz line is
  about as quiet as -40 dBFS (its energy is mostly above 4 kHz), and with a quieter fill the
  model took the silence-and-vowel left of "sales" for "help" (11/20 "sales" right, now
  20/20). -45 dBFS gave 135, -35 138, -30 133 (tried on the same set).

Confidence compares the grammar's best path with an unconstrained phone loop over the same
audio (the shipped phonetic language model): the per-frame log-likelihood ratio, mapped
through a logistic centred at ``LLR_MIDPOINT`` (0.5 there). Speech the grammar explains about
as well as free phones do is likely out of grammar; the lattice posterior PocketSphinx
reports in grammar mode was measured not to separate the two at all (0.08-0.36 for both on
the bench set), this ratio does (most in-grammar utterances above 2, most others below).
The ratio alone lets long out-of-grammar sentences through ("my dog has fleas and my cat
has none" as "my account", confidence 0.8): a phrase is also rejected when the speech in the
audio (first to last 20 ms frame ``SPEECH_ABOVE_FLOOR_DB`` over the quietest frames and over
``SPEECH_MIN_DBFS``) lasts longer than ``MAX_SPEECH_S_PER_PHONE`` per phone of the phrase's
pronunciation. On the bench set (espeak-ng, 140 and 180 words a minute) the right phrases
took at most 0.15 s per phone; out-of-grammar sentences given a phrase mostly 0.13-0.22 s.
0.155 s cut false accepts from 33 % to 17 % on clean audio with no right answer lost
(bench/results/2026-12-01-speech.txt); 0.14 s cut them to 6 % but lost 2 right answers of
42. Slow human callers may need more: it is a constant here, not yet a setting. A short
phrase is always allowed ``MIN_PHRASE_ALLOWANCE_S`` (a call's path may stretch a "yes").
The other phrases of the n-best list share what the best one leaves. A result that is not one of the
grammar's phrases (the search ended outside a final state, e.g. "pay my") is dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from pocketsphinx import Decoder, get_model_path

from .recognizer import Grammar, Hypothesis, Pcm16, Recognizer, register_backend

MODEL_RATE_HZ = 16000
# per-frame log-likelihood ratio, in PocketSphinx's log units (base 1.0001), of confidence 0.5
LLR_MIDPOINT = 2.0
LLR_SCALE = 2.0
_PHONE_LOOP = "_phones"
NOISE_FILL_DBFS = -40.0
# a phrase said slower than this per phone of its pronunciation is rejected (see above)
MAX_SPEECH_S_PER_PHONE = 0.155
# ... but a short phrase ("yes", "help") is always allowed this long: in a loaded test run
# a spoken "yes" (3 phones, 0.32 s of speech in the file, 0.465 s allowed) was rejected
# after the call's path (jitter buffer, loss concealment) had stretched it; out-of-grammar
# sentences last well over a second, so the floor keeps rejecting them
MIN_PHRASE_ALLOWANCE_S = 0.8
SPEECH_ABOVE_FLOOR_DB = 12.0
SPEECH_MIN_DBFS = -50.0  # and never quieter than this (digital silence has no floor)
_FRAME_SAMPLES = 160  # 20 ms at 8 kHz
# Pronunciations added to the shipped dictionary's. "help" with its dark L said as a vowel
# (L-vocalisation, "hewp"): on the bench set the phone loop heard "help" as "UW L F" or "UW"
# and the grammar took it for "sales" in 16 of its 19 wrong answers; this variant took the
# grammar pass from 39/39/36/34 to 39/42/40/38 right of 42 (clean, 30, 20, 10 dB SNR) for one
# more out-of-grammar sentence of 18 given a phrase.
# Word insertion probability for a repeating grammar (a digit string): the default 0.65 let
# the search add digits ("four one five five" as "four one five nine oh"); 1e-3 took a
# 12-string espeak-ng set from 4 to 6 right (1e-6: 1). Single-phrase menus keep the default.
REPEAT_WIP = 1e-3
# Silence probability for a repeating grammar: with the -40 dBFS fill, the pauses between
# digits sound like a weak fricative and the search put an "F AY V" or a "TH R IY" there
# ("one two three four" as "five one two three four"); the default 0.005 -> 0.5 took the
# bench's 8 strings x 5 dev voices (clean and 20 dB SNR) from 29/80 to 32/80 (0.1: 31)
REPEAT_SILPROB = 0.5
PRONUNCIATION_VARIANTS: dict[str, tuple[str, ...]] = {"help": ("HH EH OW P",)}
_FULL_SCALE = 32768.0


def upsample_for_model(pcm: Pcm16, seed: int = 0) -> Pcm16:
    """8 kHz int16 -> 16 kHz int16 by FFT zero-padding, plus the noise fill."""
    x = pcm.astype(np.float64)
    spectrum = np.fft.rfft(x)
    padded = np.zeros(x.size + 1, dtype=np.complex128)
    padded[: spectrum.size] = spectrum
    y = np.fft.irfft(padded, 2 * x.size) * 2.0
    rng = np.random.default_rng(seed)
    y += rng.standard_normal(y.size) * _FULL_SCALE * 10 ** (NOISE_FILL_DBFS / 20)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def speech_span_s(pcm: Pcm16) -> float:
    """Seconds from the first to the last 20 ms frame standing ``SPEECH_ABOVE_FLOOR_DB``
    above the line's floor (the 10th-percentile frame level) and above ``SPEECH_MIN_DBFS``:
    how long the caller spoke,
    whatever padding surrounds it. 0.0 for audio with no such frame."""
    n = pcm.size // _FRAME_SAMPLES
    if n == 0:
        return 0.0
    frames = pcm[: n * _FRAME_SAMPLES].astype(np.float64).reshape(n, _FRAME_SAMPLES)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1.0)
    floor_db = float(np.percentile(level_db, 10))
    least_db = 20 * np.log10(_FULL_SCALE) + SPEECH_MIN_DBFS
    loud = np.flatnonzero(level_db >= max(floor_db + SPEECH_ABOVE_FLOOR_DB, least_db))
    if loud.size == 0:
        return 0.0
    return float(loud[-1] - loud[0] + 1) * _FRAME_SAMPLES / 8000


def too_long_for(span_s: float, phones: int) -> bool:
    """Whether ``span_s`` seconds of speech are too long to be a phrase of ``phones``."""
    return span_s > max(MIN_PHRASE_ALLOWANCE_S, MAX_SPEECH_S_PER_PHONE * max(1, phones))


def jsgf(grammar: Grammar) -> str:
    alternatives = " | ".join(f"( {p} )" for p in grammar.phrases)
    if grammar.repeat:
        alternatives = f"( {alternatives} )+"
    return f"#JSGF V1.0;\ngrammar menu;\npublic <menu> = {alternatives};\n"


@register_backend
class PocketSphinxRecognizer(Recognizer):
    name = "pocketsphinx"

    def __init__(self, models: Mapping[str, Path]) -> None:
        super().__init__(models)
        model_dir = Path(models["en-US"]) if "en-US" in models else Path(get_model_path())
        self._decoder = Decoder(
            hmm=str(model_dir / "en-us" / "en-us"),
            dict=str(model_dir / "en-us" / "cmudict-en-us.dict"),
            samprate=MODEL_RATE_HZ,
            lm=None,
            loglevel="FATAL",
        )
        self._searches: dict[tuple[str, ...], str] = {}
        for word, variants in PRONUNCIATION_VARIANTS.items():
            for i, phones in enumerate(variants, start=2):
                self._decoder.add_word(f"{word}({i})", phones, False)
        self._decoder.add_allphone_file(_PHONE_LOOP,
                                        str(model_dir / "en-us" / "en-us-phone.lm.bin"))

    def languages(self) -> frozenset[str]:
        return frozenset({"en-US"})

    def unknown_words(self, phrases: Iterable[str], language: str) -> list[str]:
        words = Grammar.of(phrases).words()
        with self._lock:
            return [w for w in words if self._decoder.lookup_word(w) is None]

    def _phones(self, text: str) -> int:
        return sum(len((self._decoder.lookup_word(w) or "").split()) for w in text.split())

    def _search_for(self, grammar: Grammar) -> str:
        key = (*grammar.phrases, "+" if grammar.repeat else "")
        name = self._searches.get(key)
        if name is None:
            name = "g" + hashlib.sha1("\n".join(key).encode()).hexdigest()[:12]
            config = self._decoder.config
            default_wip, default_silprob = config["wip"], config["silprob"]
            if grammar.repeat:  # read when the search is made, kept by it
                config["wip"] = REPEAT_WIP
                config["silprob"] = REPEAT_SILPROB
            try:
                self._decoder.add_jsgf_string(name, jsgf(grammar))
            finally:
                config["wip"] = default_wip
                config["silprob"] = default_silprob
            self._searches[key] = name
        return name

    def _recognize(self, pcm: Pcm16, grammar: Grammar, language: str,
                   n_best: int) -> list[Hypothesis]:
        d = self._decoder
        audio = upsample_for_model(pcm).tobytes()
        d.activate_search(self._search_for(grammar))
        d.start_utt()
        d.process_raw(audio, full_utt=True)
        d.end_utt()
        best = d.hyp()
        if best is None or not grammar.accepts(best.hypstr):
            return []
        if too_long_for(speech_span_s(pcm), self._phones(best.hypstr)):
            return []
        logmath = d.get_logmath()
        grammar_score = logmath.log(best.best_score)
        frames = max(1, d.n_frames())
        text = best.hypstr
        others: list[str] = []
        for alt, _ in zip(d.nbest(), range(10 * n_best), strict=False):
            if len(others) >= n_best - 1:
                break
            alt_text = alt.hypstr if alt is not None else None
            if alt_text and alt_text != text and alt_text not in others and \
                    grammar.accepts(alt_text):
                others.append(alt_text)
        d.activate_search(_PHONE_LOOP)
        d.start_utt()
        d.process_raw(audio, full_utt=True)
        d.end_utt()
        free = d.hyp()
        free_score = logmath.log(free.best_score) if free is not None else grammar_score
        llr = (grammar_score - free_score) / frames
        p_best = 1.0 / (1.0 + math.exp(-(llr - LLR_MIDPOINT) / LLR_SCALE))
        # the share the best phrase leaves goes to the other phrases found
        rest = (1.0 - p_best) / len(others) if others else 0.0
        alternatives = [Hypothesis(t, min(rest, p_best)) for t in others]
        return [Hypothesis(text, p_best), *alternatives]
