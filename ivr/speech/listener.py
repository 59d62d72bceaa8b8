"""One utterance of a listening menu: the caller's audio (as the media tap's batches are
drained on the loop) through the VAD, cut from a little before speech onset to its end.

Fed with :meth:`SpeechListener.feed` (int16 samples at 8 kHz, the batch ending at about
``now_s``). Calls ``on_started(onset_s)`` once speech has lasted ``min_speech_ms`` (the
session stops the prompt: barge-in) and ``on_utterance(pcm, end_s, reason)`` when it ends;
after that it ignores audio. The callbacks run where ``feed`` runs (the worker's loop); the
recognition itself is done elsewhere (the speech service), never here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from .vad import FRAME_MS, FRAME_SAMPLES, SpeechEnded, SpeechStarted, VadSettings
from .vad import VoiceActivityDetector as _Vad

PRE_ROLL_MS = 300  # audio kept from before onset: the first phoneme starts below the VAD


class SpeechListener:
    def __init__(self, settings: VadSettings, on_started: Callable[[float], None],
                 on_utterance: Callable[[np.ndarray, float, str], None]) -> None:
        self._vad = _Vad(settings)
        self._on_started = on_started
        self._on_utterance = on_utterance
        self._rest = np.zeros(0, dtype=np.int16)
        self._pre: deque[np.ndarray] = deque(maxlen=PRE_ROLL_MS // FRAME_MS)
        self._speech: list[np.ndarray] = []
        self._speaking = False
        self.done = False

    def feed(self, samples: np.ndarray, now_s: float) -> None:
        if self.done:
            return
        x = np.concatenate((self._rest, samples.astype(np.int16)))
        n = x.size // FRAME_SAMPLES
        self._rest = x[n * FRAME_SAMPLES:]
        end_ms = now_s * 1000.0
        for k in range(n):
            frame = x[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]
            at_ms = int(round(end_ms - (n - k) * FRAME_MS))
            events = self._vad.feed(frame, at_ms)
            if self._speaking:
                self._speech.append(frame)
            else:
                self._pre.append(frame)
            for event in events:
                if isinstance(event, SpeechStarted):
                    self._speaking = True
                    self._speech = list(self._pre)
                    self._on_started(event.onset_ms / 1000.0)
                elif isinstance(event, SpeechEnded):
                    self.done = True
                    self._on_utterance(np.concatenate(self._speech), event.end_ms / 1000.0,
                                       event.reason)
                    return
