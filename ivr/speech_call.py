"""A call's side of speech menus: runs the flow's ``Listen`` / ``StopListening`` actions on
the caller's leg and turns what the caller said into inbox items for the session.

The leg hands the caller's audio to a :class:`~ivr.speech.listener.SpeechListener` on the
worker's loop (batches drained from the media tap, never on the media thread); the VAD's
onset becomes :class:`SpeechOnset` (barge-in), the utterance is sent to the speech service
(:class:`~ivr.speech.service.SpeechClient`, the recognition runs in that process) and the
answer becomes :class:`SpeechHeard`. Both go through the call's inbox, so the session
handles them in order with keys and prompt ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from media import CallLeg, LegGoneError

from .flow.interpreter import Listen
from .logs import log_event
from .speech.listener import SpeechListener
from .speech.recognizer import Grammar, RecognizerError
from .speech.service import SpeechClient
from .speech.vad import VadSettings

log = logging.getLogger("ivr.speech")


@dataclass(frozen=True)
class SpeechOnset:
    """The caller started speaking (``onset_s``, loop clock) in a listening menu."""

    onset_s: float


@dataclass(frozen=True)
class SpeechHeard:
    """The recogniser's n-best for the utterance (empty: nothing in the grammar, or the
    service failed); ``end_s`` is the end of speech, loop clock."""

    hypotheses: tuple[tuple[str, float], ...]
    end_s: float


class CallSpeech:
    def __init__(self, leg: CallLeg, client: SpeechClient | None, call_id: str,
                 put: Callable[[object], None]) -> None:
        self.leg = leg
        self.client = client
        self.call_id = call_id
        self._put = put
        self._listener: SpeechListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    async def listen(self, action: Listen) -> None:
        if self.client is None or not self.client.socket_path.exists():
            if not self._warned:
                log.warning("call %s: a speech menu, but no speech service: DTMF only",
                            self.call_id)
                self._warned = True
            return
        settings = VadSettings(end_silence_ms=action.end_silence_ms,
                               max_utterance_ms=action.max_utterance_ms)
        grammar = Grammar.of(action.phrases, repeat=action.repeat)
        listener = SpeechListener(
            settings,
            on_started=lambda onset_s: self._put(SpeechOnset(onset_s)),
            on_utterance=lambda pcm, end_s, reason: self._utterance(
                pcm, end_s, reason, grammar, action.language),
        )
        self._listener = listener
        try:
            await self.leg.listen(listener)
        except LegGoneError:
            self._listener = None

    async def stop(self) -> None:
        if self._listener is None:
            return
        self._listener = None
        try:
            await self.leg.listen(None)
        except LegGoneError:
            pass

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _utterance(self, pcm: np.ndarray, end_s: float, reason: str, grammar: Grammar,
                   language: str) -> None:
        self._task = asyncio.ensure_future(self._recognise(pcm, end_s, reason, grammar,
                                                           language))

    async def _recognise(self, pcm: np.ndarray, end_s: float, reason: str, grammar: Grammar,
                         language: str) -> None:
        await self.stop()
        assert self.client is not None
        started = time.perf_counter()
        try:
            hyps = await self.client.recognize(pcm.astype(np.int16), grammar, language)
        except RecognizerError as exc:
            log.warning("call %s: recognition failed: %s", self.call_id, exc)
            hyps = []
        log_event("speech.recognised", call_id=self.call_id, reason=reason,
                  audio_ms=int(pcm.size / 8), recognise_ms=int(
                      (time.perf_counter() - started) * 1000),
                  best=hyps[0].text if hyps else "")
        self._put(SpeechHeard(tuple((h.text, h.confidence) for h in hyps), end_s))
