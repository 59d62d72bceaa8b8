"""The PocketSphinx backend (the default): the English model its PyPI package ships, in
grammar mode, with a JSGF grammar built from the menu's phrases.

Audio handling, which is where stock PocketSphinx loses most on phone audio:

* the shipped acoustic model is for 16 kHz audio (its ``feat.params`` fixes filters up to
  6.8 kHz), so 8 kHz audio is upsampled by FFT zero-padding;
* a band above 4 kHz that is exactly zero, and digital silence around the words (a G.711
  encoder's idle code), give log filter energies of minus infinity that wreck cepstral mean
  normalisation and the search: white noise at -60 dBFS (below G.711's idle noise on a real
  line) is added to the whole upsampled signal. On the repo's espeak-ng set this took the
  grammar's exact-phrase rate from 24/33 to 31/33 (bench/bench_speech.py measures it).

Confidence compares the grammar's best path with an unconstrained phone loop over the same
audio (the shipped phonetic language model): the per-frame log-likelihood ratio, mapped
through a logistic centred at ``LLR_MIDPOINT`` (0.5 there). Speech the grammar explains about
as well as free phones do is likely out of grammar; the lattice posterior PocketSphinx
reports in grammar mode was measured not to separate the two at all (0.08-0.36 for both on
the bench set), this ratio does (most in-grammar utterances above 2, most others below).
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
NOISE_FILL_DBFS = -60.0
_FULL_SCALE = 32768.0


def upsample_for_model(pcm: Pcm16, seed: int = 0) -> Pcm16:
    """8 kHz int16 -> 16 kHz int16 by FFT zero-padding, plus the -60 dBFS noise fill."""
    x = pcm.astype(np.float64)
    spectrum = np.fft.rfft(x)
    padded = np.zeros(x.size + 1, dtype=np.complex128)
    padded[: spectrum.size] = spectrum
    y = np.fft.irfft(padded, 2 * x.size) * 2.0
    rng = np.random.default_rng(seed)
    y += rng.standard_normal(y.size) * _FULL_SCALE * 10 ** (NOISE_FILL_DBFS / 20)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


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
        self._decoder.add_allphone_file(_PHONE_LOOP,
                                        str(model_dir / "en-us" / "en-us-phone.lm.bin"))

    def languages(self) -> frozenset[str]:
        return frozenset({"en-US"})

    def unknown_words(self, phrases: Iterable[str], language: str) -> list[str]:
        words = Grammar.of(phrases).words()
        with self._lock:
            return [w for w in words if self._decoder.lookup_word(w) is None]

    def _search_for(self, grammar: Grammar) -> str:
        key = (*grammar.phrases, "+" if grammar.repeat else "")
        name = self._searches.get(key)
        if name is None:
            name = "g" + hashlib.sha1("\n".join(key).encode()).hexdigest()[:12]
            self._decoder.add_jsgf_string(name, jsgf(grammar))
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
