"""The Vosk (Kaldi) backend: one model directory per language from the settings
(``speech.models``), the grammar passed to Kaldi as its phrase list.

Two passes over the utterance: one with n-best alternatives (each with a total path score),
one with word posteriors. The best transcript's confidence is the mean posterior of its
words; the others get it scaled by the softmax of their path scores. A transcript
that strings several phrases together is cut down to the phrases it contains in order,
and a transcript that holds none of them (``[unk]``, silence) is dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import vosk

from .recognizer import (
    SAMPLE_RATE_HZ,
    Grammar,
    Hypothesis,
    Pcm16,
    Recognizer,
    RecognizerError,
    register_backend,
)

vosk.SetLogLevel(-1)


def _model_files_ok(path: Path) -> bool:
    return (path / "am" / "final.mdl").is_file() and (path / "conf" / "model.conf").is_file()


@register_backend
class VoskRecognizer(Recognizer):
    name = "vosk"

    def __init__(self, models: Mapping[str, Path]) -> None:
        super().__init__(models)
        self._models: dict[str, vosk.Model] = {}
        self._vocabulary: dict[str, set[str]] = {}
        for language, directory in models.items():
            path = Path(directory)
            if not _model_files_ok(path):
                raise RecognizerError(
                    f"speech.models.{language}: {path} is not a Vosk model directory "
                    f"(no am/final.mdl or conf/model.conf)"
                )
            self._models[language] = vosk.Model(str(path))
            self._vocabulary[language] = _words_of(path)

    def languages(self) -> frozenset[str]:
        return frozenset(self._models)

    def unknown_words(self, phrases: Iterable[str], language: str) -> list[str]:
        words = Grammar.of(phrases).words()
        vocabulary = self._vocabulary.get(language)
        if vocabulary is None:
            return words
        if not vocabulary:  # a model without a word list: ask Kaldi word by word
            model = self._models[language]
            return [w for w in words if model.vosk_model_find_word(w) < 0]
        return [w for w in words if w not in vocabulary]

    def _recognize(self, pcm: Pcm16, grammar: Grammar, language: str,
                   n_best: int) -> list[Hypothesis]:
        model = self._models[language]
        words = [*grammar.phrases]
        if model.vosk_model_find_word("[unk]") >= 0:
            words.append("[unk]")
        phrase_list = json.dumps(words, ensure_ascii=False)
        rec = vosk.KaldiRecognizer(model, SAMPLE_RATE_HZ, phrase_list)
        rec.SetMaxAlternatives(max(n_best, 2))
        rec.AcceptWaveform(pcm.tobytes())
        result = json.loads(rec.FinalResult())
        posterior = vosk.KaldiRecognizer(model, SAMPLE_RATE_HZ, phrase_list)
        posterior.SetWords(True)
        posterior.AcceptWaveform(pcm.tobytes())
        word_confs = {
            str(w.get("word")): float(w.get("conf", 0.0))
            for w in json.loads(posterior.FinalResult()).get("result", [])
        }
        scored: dict[str, float] = {}
        for alt in result.get("alternatives", []):
            raw = str(alt.get("text", "")).replace("[unk]", "").strip()
            text = raw if grammar.repeat and grammar.accepts(raw) else _phrases_in(raw, grammar)
            if text and text not in scored:
                scored[text] = float(alt.get("confidence", 0.0))
        if not scored:
            return []
        top = max(scored.values())
        weights = {t: math.exp(s - top) for t, s in scored.items()}
        total = sum(weights.values())
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])[:n_best]
        best_words = ranked[0][0].split()
        top_conf = sum(word_confs.get(w, 0.0) for w in best_words) / len(best_words)
        share = ranked[0][1] / total
        return [Hypothesis(t, top_conf * (w / total) / share) for t, w in ranked]


def _phrases_in(text: str, grammar: Grammar) -> str:
    """The longest grammar phrase found in ``text`` (word-aligned), or ``""``."""
    padded = f" {text} "
    found = [p for p in grammar.phrases if f" {p} " in padded]
    return max(found, key=len) if found else ""


def _words_of(model_dir: Path) -> set[str]:
    words_txt = model_dir / "graph" / "words.txt"
    if not words_txt.is_file():
        return set()
    with words_txt.open(encoding="utf-8") as f:
        return {line.split()[0] for line in f if line.strip()}
