"""Voicemail suspected on a callback's customer leg: pure rules, ``now`` passed in.

A callback that reaches an answering machine is not reached: the worker reports
``voicemail`` and the callback is retried like no answer (docs/acd.md "Callbacks"). Two
signs, from the queue's ``callback:`` settings:

- answered sooner than a person would: less than ``voicemail_answer_s`` after the customer's
  phone started ringing (:func:`answered_too_soon`);
- a greeting: the first ``voicemail_greeting_s`` after the answer are continuous speech
  (:class:`GreetingDetector`, fed the customer's audio). A person says "hello?" and waits:
  a pause of ``PAUSE_S`` after some speech, or silence throughout, is a person, decided as
  soon as it is heard; speech in at least ``SPEECH_SHARE`` of the window is a machine.
"""

from __future__ import annotations

import enum
import math

import numpy as np

FRAME_S = 0.02  # the detector's unit: 20 ms of audio
SPEECH_DBFS = -40.0  # a frame louder than this is speech
PAUSE_S = 0.5  # silence this long after speech: a person waiting for an answer
SPEECH_SHARE = 0.8  # of the window: continuous speech


def answered_too_soon(ringing_for_s: float, voicemail_answer_s: float) -> bool:
    """Answered after ``ringing_for_s`` of ringing: sooner than a person would? (0: off)"""
    return voicemail_answer_s > 0 and ringing_for_s < voicemail_answer_s


class Verdict(enum.Enum):
    UNDECIDED = "undecided"
    PERSON = "person"
    VOICEMAIL = "voicemail"


def frame_dbfs(samples: np.ndarray) -> float:
    """A frame's RMS level in dBFS (int16 samples); -inf for digital silence."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class GreetingDetector:
    """Fed the customer's audio from the answer on (``feed``, as a media FrameSink); its
    ``verdict`` is PERSON or VOICEMAIL once decided, UNDECIDED before. ``decide(now)`` at
    the window's end gives the final one."""

    def __init__(self, window_s: float, rate_hz: int = 8000) -> None:
        if window_s <= 0:
            raise ValueError(f"greeting window {window_s!r} s: give a positive number")
        self.window_s = window_s
        self.rate_hz = rate_hz
        self.verdict = Verdict.UNDECIDED
        self._frame = max(1, int(rate_hz * FRAME_S))
        self._pending = np.zeros(0, dtype=np.int16)
        self._heard_s = 0.0  # audio taken so far
        self._speech_s = 0.0
        self._pause_s = 0.0  # silence since the last speech
        self._spoke = False

    def feed(self, samples: np.ndarray, now_s: float = 0.0) -> None:
        if self.verdict is not Verdict.UNDECIDED:
            return
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        whole = len(data) // self._frame * self._frame
        self._pending = data[whole:]
        for start in range(0, whole, self._frame):
            self._take(frame_dbfs(data[start:start + self._frame]) > SPEECH_DBFS)
            if self.verdict is not Verdict.UNDECIDED:
                return

    def feed_frames(self, speech: list[bool]) -> None:
        """The same, from frames already judged speech or not (tests, other meters)."""
        for is_speech in speech:
            if self.verdict is not Verdict.UNDECIDED:
                return
            self._take(is_speech)

    def _take(self, is_speech: bool) -> None:
        self._heard_s += FRAME_S
        if is_speech:
            self._speech_s += FRAME_S
            self._spoke, self._pause_s = True, 0.0
        else:
            self._pause_s += FRAME_S
            if self._spoke and self._pause_s >= PAUSE_S - 1e-9:
                self.verdict = Verdict.PERSON  # spoke, then waited
                return
        if self._heard_s >= self.window_s - 1e-9:
            self.verdict = self._final()

    def _final(self) -> Verdict:
        if self._speech_s >= SPEECH_SHARE * self.window_s - 1e-9:
            return Verdict.VOICEMAIL
        return Verdict.PERSON

    def decide(self) -> Verdict:
        """The window is over (by the clock): the verdict on what was heard. Audio that
        never came (a silent line) is a person: nothing suggests a machine."""
        if self.verdict is Verdict.UNDECIDED:
            self.verdict = self._final()
        return self.verdict
