"""Voicemail suspected on a callback's customer leg (ivr/voicemail_detect.py): answered
sooner than a person would, or a greeting (continuous speech) in the first seconds; a
person says "hello?" and waits, or says nothing."""

from __future__ import annotations

import numpy as np
import pytest

from ivr.voicemail_detect import FRAME_S, GreetingDetector, Verdict, answered_too_soon


def frames(seconds: float, speech: bool) -> list[bool]:
    return [speech] * round(seconds / FRAME_S)


def test_an_answer_sooner_than_voicemail_answer_s_after_ringing_is_suspect() -> None:
    assert answered_too_soon(0.4, 1.0)
    assert not answered_too_soon(1.0, 1.0) and not answered_too_soon(6.0, 1.0)
    assert not answered_too_soon(0.0, 0.0)  # 0 turns the rule off


def test_continuous_speech_for_the_window_is_a_greeting() -> None:
    machine = GreetingDetector(3.0)
    machine.feed_frames(frames(2.9, True))
    assert machine.verdict is Verdict.UNDECIDED  # not before the window is heard
    machine.feed_frames(frames(0.1, True))
    assert machine.verdict is Verdict.VOICEMAIL
    # short breaths between words (under the pause a person leaves) are still a greeting
    breathing = GreetingDetector(3.0)
    breathing.feed_frames((frames(0.8, True) + frames(0.2, False)) * 3)
    assert breathing.verdict is Verdict.VOICEMAIL


def test_a_person_says_hello_and_waits_decided_at_the_pause() -> None:
    person = GreetingDetector(3.0)
    person.feed_frames(frames(0.6, True) + frames(0.5, False))
    assert person.verdict is Verdict.PERSON  # at once, not at the window's end
    person.feed_frames(frames(3.0, True))  # whatever comes later changes nothing
    assert person.verdict is Verdict.PERSON
    silent = GreetingDetector(3.0)  # picked up and said nothing (or no audio came)
    silent.feed_frames(frames(1.0, False))
    assert silent.decide() is Verdict.PERSON
    sparse = GreetingDetector(3.0)  # speech, but under 80 % of the window, no long pause
    sparse.feed_frames((frames(0.2, True) + frames(0.4, False)) * 5)
    assert sparse.verdict is Verdict.PERSON


def test_the_detector_judges_audio_samples_in_20_ms_frames() -> None:
    rate = 8000
    t = np.arange(int(rate * 3.0)) / rate
    loud = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    machine = GreetingDetector(3.0, rate)
    for start in range(0, len(loud), 333):  # batches that do not fall on frames
        machine.feed(loud[start:start + 333])
    assert machine.verdict is Verdict.VOICEMAIL
    person = GreetingDetector(3.0, rate)
    person.feed(np.concatenate([loud[:rate // 2], np.zeros(rate, dtype=np.int16)]))
    assert person.verdict is Verdict.PERSON
    with pytest.raises(ValueError, match="greeting window 0 s"):
        GreetingDetector(0)
