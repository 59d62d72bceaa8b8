"""Speech recognition behind one small interface: 8 kHz audio in, n-best transcripts out.

::

    recognizer = create_recognizer("pocketsphinx", models={})        # loads its models, once
    grammar = Grammar.of(["billing", "pay my bill", "agent"])
    recognizer.recognize(pcm_int16_8khz, grammar, "en-US", n_best=3)
    # -> [Hypothesis("pay my bill", 0.82), Hypothesis("agent", 0.11)]

A backend is a :class:`Recognizer` subclass registered by name (:func:`register_backend`);
which one a deployment runs comes from the settings (``speech.backend``), and so do model
directories per language (``speech.models``). A recogniser loads its models when it is made
and never again: it is made once per process that recognises (see docs/architecture.md,
"Where recognition runs"), never per call. :meth:`Recognizer.recognize` is blocking and
CPU-bound: callers run it in a thread (never on the media thread or an event loop). One
recogniser serves one recognition at a time (it holds a lock); a process that recognises
several at once makes one per thread.

This module and its backends do not import pjsua2: the test harness (``ivr-harness``) uses
them directly on audio files.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE_HZ",
    "Grammar",
    "Hypothesis",
    "NoModelError",
    "Recognizer",
    "RecognizerError",
    "UnknownBackendError",
    "backend_names",
    "create_recognizer",
    "normalise_phrase",
    "register_backend",
]

SAMPLE_RATE_HZ = 8000
Pcm16 = npt.NDArray[np.int16]


class RecognizerError(Exception):
    """Base of the recogniser's errors; each message says what to change."""


class UnknownBackendError(RecognizerError):
    pass


class NoModelError(RecognizerError):
    """No model for a language: its speech menus cannot listen."""


@dataclass(frozen=True)
class Hypothesis:
    """One transcript and how sure the backend is of it (0.0 .. 1.0)."""

    text: str
    confidence: float


_SPACES = re.compile(r"\s+")


def normalise_phrase(phrase: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: how phrases are compared."""
    return _SPACES.sub(" ", phrase.strip().strip(".,!?;:").lower())


@dataclass(frozen=True)
class Grammar:
    """The phrases a listening menu accepts (already normalised, no duplicates, sorted);
    with ``repeat``, any sequence of them ("four one five five" from the digit words)."""

    phrases: tuple[str, ...]
    repeat: bool = False

    @classmethod
    def of(cls, phrases: Iterable[str], repeat: bool = False) -> Grammar:
        cleaned = sorted({normalise_phrase(p) for p in phrases} - {""})
        if not cleaned:
            raise RecognizerError("a grammar needs at least one non-empty phrase")
        return cls(tuple(cleaned), repeat)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is a phrase (or, with ``repeat``, a sequence of phrases)."""
        if text in self.phrases:
            return True
        if not self.repeat or not text:
            return False
        words = text.split()
        ok = [False] * (len(words) + 1)  # ok[i]: words[:i] is a sequence of phrases
        ok[0] = True
        for i in range(len(words)):
            if ok[i]:
                for p in self.phrases:
                    n = len(p.split())
                    if " ".join(words[i:i + n]) == p:
                        ok[i + n] = True
        return ok[-1]

    def words(self) -> list[str]:
        return sorted({w for p in self.phrases for w in p.split()})


class Recognizer(ABC):
    """A loaded recogniser. Subclasses set ``name`` and implement the three methods."""

    name: ClassVar[str]

    def __init__(self, models: Mapping[str, Path]) -> None:
        self.models = dict(models)
        self._lock = threading.Lock()

    @abstractmethod
    def languages(self) -> frozenset[str]:
        """Languages (BCP 47 tags, e.g. ``en-US``) this recogniser has a model for."""

    @abstractmethod
    def unknown_words(self, phrases: Iterable[str], language: str) -> list[str]:
        """Words of ``phrases`` that the language's dictionary does not know (sorted)."""

    @abstractmethod
    def _recognize(self, pcm: Pcm16, grammar: Grammar, language: str,
                   n_best: int) -> list[Hypothesis]:
        """Backend work for :meth:`recognize` (called under the lock, audio checked)."""

    def recognize(self, pcm: Pcm16, grammar: Grammar, language: str,
                  n_best: int = 3) -> list[Hypothesis]:
        """Transcripts of one utterance (8 kHz mono int16), best first, at most ``n_best``;
        each is one of the grammar's phrases. Empty when nothing in the grammar was said."""
        if language not in self.languages():
            raise NoModelError(
                f"the {self.name} recogniser has no model for {language} "
                f"(it has: {', '.join(sorted(self.languages())) or 'none'}); "
                f"set speech.models.{language} to a model directory"
            )
        samples = np.asarray(pcm)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise RecognizerError(
                f"audio must be mono int16 at {SAMPLE_RATE_HZ} Hz, got {samples.dtype} "
                f"with shape {samples.shape}"
            )
        if n_best < 1:
            raise RecognizerError(f"n_best={n_best}: ask for at least one hypothesis")
        with self._lock:
            return self._recognize(samples, grammar, language, n_best)


_BACKENDS: dict[str, type[Recognizer]] = {}


def register_backend(cls: type[Recognizer]) -> type[Recognizer]:
    """Class decorator: make a backend available to :func:`create_recognizer` by its name."""
    _BACKENDS[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    _load_builtin_backends()
    return sorted(_BACKENDS)


def create_recognizer(backend: str, models: Mapping[str, Path] | None = None) -> Recognizer:
    """Make (and load) the named backend; ``models`` maps languages to model directories."""
    _load_builtin_backends()
    cls = _BACKENDS.get(backend)
    if cls is None:
        raise UnknownBackendError(
            f"unknown speech backend {backend!r} (known: {', '.join(sorted(_BACKENDS))})"
        )
    return cls(models or {})


def _load_builtin_backends() -> None:
    from . import pocketsphinx_backend, vosk_backend  # noqa: F401  (they register themselves)
