"""Voice activity and endpointing (ivr/speech/vad.py) on generated audio: espeak-ng speech
through G.711, silence, white noise, clicks and DTMF tones."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ivr.speech.vad import (
    SpeechEnded,
    SpeechStarted,
    VadEvent,
    VadSettings,
    VadState,
    VoiceActivityDetector,
)
from tests import speech_audio as sa

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox synthesise the speech",
)


def run(pcm: sa.Pcm, settings: VadSettings | None = None, start_ms: int = 0) -> list[VadEvent]:
    vad = VoiceActivityDetector(settings)
    events: list[VadEvent] = []
    for i, frame in enumerate(sa.frames(pcm)):
        events += vad.feed(frame, start_ms + i * 20)
    return events


@pytest.fixture(scope="module")
def bill() -> sa.Pcm:
    return sa.speech("I would like to pay my bill")


def test_an_utterance_between_silences_starts_at_its_onset_and_ends_after_trailing_silence(
    bill: sa.Pcm,
) -> None:
    s = VadSettings()
    events = run(sa.concat(sa.silence(0.5), bill, sa.silence(1.5)), start_ms=10_000)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, ended = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert 10_500 <= started.onset_ms <= 10_560
    # sure only after min_speech_ms of voice, and not much later
    assert started.detected_ms - started.onset_ms >= s.min_speech_ms
    assert started.detected_ms - started.onset_ms <= s.min_speech_ms + 80
    speech_end_ms = 10_500 + bill.size // 8
    assert ended.reason == "silence"
    assert speech_end_ms - 200 <= ended.end_ms <= speech_end_ms + 20


def test_a_short_yes_is_speech() -> None:
    events = run(sa.concat(sa.silence(0.5), sa.speech("yes"), sa.silence(1.5)))
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]


@pytest.mark.parametrize("snr_db", [30, 20, 10])
def test_speech_in_line_noise_starts_once_and_ends(bill: sa.Pcm, snr_db: int) -> None:
    pcm = sa.with_noise(sa.concat(sa.silence(0.8), bill, sa.silence(1.5)), snr_db)
    events = run(pcm)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started = events[0]
    assert isinstance(started, SpeechStarted)
    assert 800 <= started.onset_ms <= 800 + bill.size // 8 // 2


@pytest.mark.parametrize(
    "name, pcm",
    [
        ("silence", sa.silence(3)),
        ("line noise -45 dBFS", sa.noise(3, -45)),
        ("loud steady noise -30 dBFS", sa.noise(3, -30)),
        ("clicks", sa.concat(*[sa.concat(sa.silence(0.3), sa.click()) for _ in range(8)])),
        ("clicks in noise", sa.concat(sa.noise(0.5, -50), sa.click(), sa.noise(0.5, -50, 2),
                                      sa.click(-3, 30), sa.noise(0.5, -50, 3))),
        ("every DTMF key, 200 ms each",
         sa.concat(*[sa.concat(sa.dtmf(k, 200), sa.silence(0.1)) for k in "1234567890*#"])),
        ("a key held for 2 s", sa.concat(sa.silence(0.3), sa.dtmf("5", 2000))),
    ],
)
def test_what_is_not_speech_never_starts_speech(name: str, pcm: sa.Pcm) -> None:
    assert run(pcm) == [], name


def test_an_utterance_longer_than_the_maximum_ends_at_the_maximum() -> None:
    long = sa.speech("one two three four five six seven eight nine ten eleven twelve")
    settings = VadSettings(max_utterance_ms=1000)
    events = run(sa.concat(sa.silence(0.2), long, sa.silence(1)), settings)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, ended = events
    assert isinstance(ended, SpeechEnded)
    assert ended.reason == "max_length"
    assert ended.end_ms - started.onset_ms == 1000


def test_a_pause_shorter_than_end_silence_keeps_one_utterance() -> None:
    two = sa.concat(sa.silence(0.3), sa.speech("billing"), sa.silence(0.4), sa.speech("please"),
                    sa.silence(1.2))
    assert [type(e) for e in run(two)] == [SpeechStarted, SpeechEnded]
    short = VadSettings(end_silence_ms=200)
    events = run(two, short)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]  # ended after "billing"
    ended = events[1]
    assert isinstance(ended, SpeechEnded) and ended.end_ms < 300 + 1000


def test_after_the_end_it_stays_quiet_until_reset(bill: sa.Pcm) -> None:
    vad = VoiceActivityDetector()
    pcm = sa.concat(sa.silence(0.2), bill, sa.silence(1.0))
    chunks = sa.frames(pcm)
    events = [e for i, f in enumerate(chunks) for e in vad.feed(f, i * 20)]
    assert vad.state is VadState.ENDED and len(events) == 2
    base = len(chunks) * 20
    assert [e for i, f in enumerate(chunks) for e in vad.feed(f, base + i * 20)] == []
    vad.reset()
    base *= 2
    again = [e for i, f in enumerate(chunks) for e in vad.feed(f, base + i * 20)]
    assert [type(e) for e in again] == [SpeechStarted, SpeechEnded]


def test_frames_as_bytes_or_arrays_decide_alike(bill: sa.Pcm) -> None:
    a, b = VoiceActivityDetector(), VoiceActivityDetector()
    for i, f in enumerate(sa.frames(sa.concat(sa.silence(0.2), bill, sa.silence(1)))):
        assert a.feed(f, i * 20) == b.feed(f.astype("<i2").tobytes(), i * 20)


def test_a_frame_of_the_wrong_size_is_refused_naming_the_size() -> None:
    with pytest.raises(ValueError, match="VAD frame has 80 samples; expected 160"):
        VoiceActivityDetector().feed(np.zeros(80, dtype=np.int16), 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_speech_ms": 0}, "min_speech_ms=0 must be at least 20 ms"),
        ({"end_silence_ms": 10}, "end_silence_ms=10 must be at least 20 ms"),
        ({"max_utterance_ms": 100}, "max_utterance_ms=100 must exceed min_speech_ms=150"),
        ({"aggressiveness": 4}, "aggressiveness=4 must be 0, 1, 2 or 3"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadSettings(**kwargs)
