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

Confidence is the lattice posterior of the best path; the posterior mass it leaves is shared
among the other phrases of the n-best list. A result that is not one of the
grammar's phrases (the search ended outside a final state, e.g. "pay my") is dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from pocketsphinx import Decoder, get_model_path

from .recognizer import Grammar, Hypothesis, Pcm16, Recognizer, register_backend

MODEL_RATE_HZ = 16000
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
        d.activate_search(self._search_for(grammar))
        d.start_utt()
        d.process_raw(upsample_for_model(pcm).tobytes(), full_utt=True)
        d.end_utt()
        best = d.hyp()
        if best is None or not grammar.accepts(best.hypstr):
            return []
        p_best = min(max(float(best.prob), 0.0), 1.0)
        others: list[str] = []
        for alt, _ in zip(d.nbest(), range(10 * n_best), strict=False):
            if len(others) >= n_best - 1:
                break
            text = alt.hypstr if alt is not None else None
            if text and text != best.hypstr and text not in others and grammar.accepts(text):
                others.append(text)
        # the posterior mass the best path leaves is shared among the other phrases found
        rest = (1.0 - p_best) / len(others) if others else 0.0
        alternatives = [Hypothesis(t, min(rest, p_best)) for t in others]
        return [Hypothesis(best.hypstr, p_best), *alternatives]
