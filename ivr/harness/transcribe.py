"""Prompt checks by transcript: ``expect_prompt: {text: ...}`` for speech that is no prompt
of the sets (a TTS prompt, another team's recording), through the speech recogniser.

:class:`RecognizerTranscriber` wraps an :class:`ivr.speech.recognizer.Recognizer` (made
once per harness process: it loads its models). The recognisers are grammar-based: they
answer with one of the phrases they are given, so a check asks for the expected text among
the prompt texts of the language's set (the other things the IVR might say), and passes
when the best transcript reads like the expected text (the step's ``min_confidence`` as
the text similarity, as for prompt texts) and the recogniser is at least that sure.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from ivr.speech.recognizer import SAMPLE_RATE_HZ, Grammar, Hypothesis, Recognizer, normalise_phrase

from .prompt_index import PromptIndex, text_similarity

# Speech is taken to have ended after this much quiet (a pause inside a sentence is shorter)
END_SILENCE_MS = 700
MAX_UTTERANCE_S = 15.0  # a transcript step listens at most this long after speech began


class RecognizerTranscriber:
    """Speech to text for text steps, by a loaded recogniser, in one language."""

    def __init__(self, recognizer: Recognizer, language: str,
                 phrases: Iterable[str] = ()) -> None:
        self.recognizer = recognizer
        self.language = language
        known = [p for p in {normalise_phrase(x) for x in phrases} if p]
        # phrases with words the dictionary lacks cannot be in a grammar
        self.phrases = [p for p in known if not recognizer.unknown_words([p], language)]

    @classmethod
    def for_index(cls, recognizer: Recognizer, language: str,
                  index: PromptIndex) -> RecognizerTranscriber:
        """With the texts of ``language``'s prompt set as the other phrases to tell apart."""
        return cls(recognizer, language, [p.text for p in index.prompts if p.set == language])

    def hears(self, pcm: npt.NDArray[np.int16], sample_rate_hz: int, text: str
              ) -> Hypothesis | None:
        """The best transcript of ``pcm`` among ``text`` and the known phrases."""
        if sample_rate_hz != SAMPLE_RATE_HZ:
            raise ValueError(f"transcripts need {SAMPLE_RATE_HZ} Hz audio, not {sample_rate_hz}")
        unknown = self.recognizer.unknown_words([text], self.language)
        if unknown:
            raise ValueError(f"the {self.recognizer.name} dictionary for {self.language} "
                             f"lacks {', '.join(unknown)}: the text cannot be recognised")
        grammar = Grammar.of([text, *self.phrases])
        hyps = self.recognizer.recognize(pcm, grammar, self.language, n_best=1)
        return hyps[0] if hyps else None

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate_hz: int) -> str | None:
        """The known phrase the audio reads as best (for "heard instead" messages)."""
        if not self.phrases:
            return None
        hyps = self.recognizer.recognize(pcm, Grammar.of(self.phrases), self.language, 1)
        return hyps[0].text if hyps else None


def verdict(text: str, heard: Hypothesis | None, min_confidence: float) -> tuple[bool, str]:
    """Whether ``heard`` passes for ``text``, and what to report either way."""
    if heard is None:
        return False, "no transcript"
    similarity = text_similarity(text, heard.text)
    said = f"transcript {heard.text!r} (similarity {similarity:.2f}, confidence " \
           f"{heard.confidence:.2f})"
    return similarity >= min_confidence and heard.confidence >= min_confidence, said
