"""expect_prompt by transcript: a text step whose text is no prompt of the sets is checked by
the speech recogniser (PocketSphinx, shipped English model) on what the call heard; real
espeak-ng speech through G.711, fed to the step as a call's ear delivers it (100 ms pieces).
No SIP here: tests/test_harness_stack.py runs calls."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from ivr.harness.call import CallContext
from ivr.harness.prompt_index import PromptIndex
from ivr.harness.scenario import ExpectPrompt
from ivr.harness.steps import StepFailed, expect_prompt
from ivr.harness.transcribe import RecognizerTranscriber
from ivr.speech.recognizer import create_recognizer
from tests import speech_audio as sa

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox synthesise the speech",
)

ROOT = Path(__file__).resolve().parent.parent
NEW_TEXT = "your order has been shipped today"  # no prompt of the shipped sets reads so


class _Ear:
    """What media.probe.Ear.drain gives, 100 ms of the clip a poll, then silence."""

    def __init__(self, pcm: np.ndarray) -> None:
        self._pcm, self._at = pcm.astype(np.int16), 0

    def drain(self) -> tuple[np.ndarray, list[float]]:
        import time

        piece = self._pcm[self._at: self._at + 800]
        self._at += 800
        if piece.size < 800:
            piece = np.concatenate((piece, np.zeros(800 - piece.size, np.int16)))
        now = time.monotonic()
        return piece, [now - 0.02 * (4 - i) for i in range(5)]


@pytest.fixture(scope="module")
def index() -> PromptIndex:
    return PromptIndex.load(ROOT / "prompts")


@pytest.fixture(scope="module")
def transcriber(index: PromptIndex) -> RecognizerTranscriber:
    return RecognizerTranscriber.for_index(create_recognizer("pocketsphinx"), "en-US", index)


def _run(index: PromptIndex, transcriber: RecognizerTranscriber | None, said: str,
         tmp_path: Path, step: ExpectPrompt) -> str:
    audio = sa.concat(sa.silence(0.4), sa.speech(said), sa.silence(1.5))
    ctx = CallContext(None, None, index, tmp_path, None, transcriber)  # type: ignore[arg-type]
    ctx.ear = _Ear(audio)  # type: ignore[assignment]
    return asyncio.run(expect_prompt(ctx, step))


def test_the_text_is_no_prompt_of_the_sets(index: PromptIndex) -> None:
    assert index.resolve_text(NEW_TEXT, 0.6) == []


def test_speech_that_reads_as_the_text_passes_by_transcript(
        index: PromptIndex, transcriber: RecognizerTranscriber, tmp_path: Path) -> None:
    step = ExpectPrompt(text=NEW_TEXT, min_confidence=0.6, within_ms=3000)
    detail = _run(index, transcriber, NEW_TEXT, tmp_path, step)
    assert detail.startswith(f"transcript {NEW_TEXT!r}"), detail


def test_other_speech_fails_naming_the_transcript_heard(
        index: PromptIndex, transcriber: RecognizerTranscriber, tmp_path: Path) -> None:
    step = ExpectPrompt(text=NEW_TEXT, min_confidence=0.6, within_ms=3000)
    with pytest.raises(StepFailed, match=r"expected speech reading 'your order has been "
                       r"shipped today' \(>= 0.6\); heard transcript 'thank you for calling"):
        _run(index, transcriber, "Thank you for calling.", tmp_path, step)


def test_without_a_recogniser_such_a_text_is_refused_as_before(
        index: PromptIndex, tmp_path: Path) -> None:
    step = ExpectPrompt(text=NEW_TEXT, min_confidence=0.6, within_ms=3000)
    with pytest.raises(StepFailed, match="no prompt of the sets reads like"):
        _run(index, None, NEW_TEXT, tmp_path, step)
