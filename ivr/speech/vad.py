"""Voice activity and endpointing: when a caller starts speaking, and when they have finished.

A pure, frame-fed state machine over webrtcvad's per-frame speech decision. It is fed 20 ms
frames of 8 kHz mono 16-bit PCM (the media tap's frames) with the time of each frame in
milliseconds (``now_ms``, any monotonic clock: the caller passes it in, nothing here reads a
clock) and returns :class:`SpeechStarted` / :class:`SpeechEnded` events::

               voiced frame                 min_speech_ms voiced
    QUIET ---------------------> ONSET ---------------------------> SPEAKING
      ^   <---------------------   |                                 |   |
      |     onset_gap_ms unvoiced  |                end_silence_ms   |   | max_utterance_ms
      |                            |                unvoiced         v   v
      +---------------- reset() ---+------------------------------- ENDED

* **Speech start** needs ``min_speech_ms`` of voiced frames within one run (unvoiced gaps
  up to ``onset_gap_ms`` are bridged): a click, a cough's burst or a line crackle is one or
  two frames and never starts speech, which is what keeps them from barging in. The event's
  ``onset_ms`` is the time of the run's first voiced frame, so barge-in latency is measured
  from where the caller began, not from when we were sure.
* **End of utterance** after ``end_silence_ms`` of unvoiced frames once speaking, or at
  ``max_utterance_ms`` after onset whatever the caller does (reason ``max_length``).
* A frame is voiced only if webrtcvad says so **and** it is above ``min_level_dbfs`` and
  ``above_noise_db`` over the noise floor **and** it is not a DTMF tone pair. webrtcvad alone
  calls steady line noise of -30 dBFS speech, and takes DTMF tones for speech; keys belong
  to the DTMF detector, not to barge-in by voice. The noise floor is the quietest frame of
  the last ``noise_window_ms`` (minimum statistics: speech always pauses between syllables
  within that window, noise does not).

Defaults and where they come from: FreeSWITCH's and Jambonz's VAD use 150-500 ms windows
for the start of speech and 500-1000 ms of trailing silence; the defaults here are
``min_speech_ms=150`` (a short word such as "yes" is 200-300 ms voiced, a click 10-40 ms),
``end_silence_ms=800`` (natural pauses inside a phrase stay under ~500 ms) and
``max_utterance_ms=10000`` (a menu answer is a few words; a long account number spoken
digit by digit fits in 10 s).
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

__all__ = [
    "FRAME_MS",
    "SAMPLE_RATE_HZ",
    "SpeechEnded",
    "SpeechStarted",
    "VadEvent",
    "VadSettings",
    "VadState",
    "VoiceActivityDetector",
    "is_tone_pair",
]

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
_FULL_SCALE = 32768.0
# A frame whose power is this share (or more) in its two strongest +-1-bin spectral peaks,
# one in each DTMF group, is a key's tone, not speech: DTMF puts 99 % there. The bands are
# the Q.23 groups widened by one 50 Hz analysis bin.
_TONE_SHARE = 0.9
_ROW_BAND_HZ = (650.0, 1000.0)
_COL_BAND_HZ = (1150.0, 1700.0)


@dataclass(frozen=True)
class VadSettings:
    """Endpointing parameters; see the module docstring for the defaults' sources."""

    min_speech_ms: int = 150
    onset_gap_ms: int = 40
    end_silence_ms: int = 800
    max_utterance_ms: int = 10000
    aggressiveness: int = 2  # webrtcvad mode 0 (least) .. 3 (most eager to call it non-speech)
    min_level_dbfs: float = -50.0
    above_noise_db: float = 6.0  # a voiced frame stands this far above the noise floor
    noise_window_ms: int = 1500  # the floor is the quietest frame within this window

    def __post_init__(self) -> None:
        for name in ("min_speech_ms", "end_silence_ms", "max_utterance_ms"):
            value = getattr(self, name)
            if value < FRAME_MS:
                raise ValueError(f"VAD setting {name}={value} must be at least {FRAME_MS} ms")
        if self.onset_gap_ms < 0:
            raise ValueError(f"VAD setting onset_gap_ms={self.onset_gap_ms} must be >= 0")
        if self.max_utterance_ms <= self.min_speech_ms:
            raise ValueError(
                f"VAD setting max_utterance_ms={self.max_utterance_ms} must exceed "
                f"min_speech_ms={self.min_speech_ms}"
            )
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"VAD aggressiveness={self.aggressiveness} must be 0, 1, 2 or 3")


@dataclass(frozen=True)
class SpeechStarted:
    """The caller has been speaking for ``min_speech_ms``; they began at ``onset_ms``."""

    onset_ms: int
    detected_ms: int


@dataclass(frozen=True)
class SpeechEnded:
    """The utterance is over: ``reason`` is ``silence`` or ``max_length``."""

    onset_ms: int
    end_ms: int
    reason: str


VadEvent = SpeechStarted | SpeechEnded


class VadState(enum.Enum):
    QUIET = "quiet"
    ONSET = "onset"
    SPEAKING = "speaking"
    ENDED = "ended"


def is_tone_pair(frame: np.ndarray) -> bool:
    """True if ``frame`` is a DTMF tone pair: two narrow peaks, one in the row group
    (697-941 Hz) and one in the column group (1209-1633 Hz, ITU-T Q.23), carrying nearly
    all of its power. Voiced speech can put 90 % of a frame in two harmonics too, but those
    are low (100-500 Hz) and never one in each group."""
    x = frame.astype(np.float64) * np.hanning(frame.size)
    power = np.abs(np.fft.rfft(x)) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return False
    bin_hz = SAMPLE_RATE_HZ / frame.size
    peaks = 0.0
    freqs = []
    work = power.copy()
    for _ in range(2):
        k = int(np.argmax(work))
        lo, hi = max(k - 1, 0), min(k + 2, work.size)
        peaks += float(work[lo:hi].sum())
        work[lo:hi] = 0.0
        freqs.append(k * bin_hz)
    low, high = sorted(freqs)
    in_groups = _ROW_BAND_HZ[0] <= low <= _ROW_BAND_HZ[1] and (
        _COL_BAND_HZ[0] <= high <= _COL_BAND_HZ[1]
    )
    return in_groups and peaks / total >= _TONE_SHARE


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of a frame relative to a full-scale square wave."""
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
    return -120.0 if rms <= 0.0 else 20.0 * float(np.log10(rms / _FULL_SCALE))


class VoiceActivityDetector:
    """One utterance's endpointing; :meth:`reset` before listening again."""

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self.state = VadState.QUIET
        self._run_start_ms = 0
        self._voiced_ms = 0
        self._last_voiced_ms = 0
        self._onset_ms = 0
        self._levels_dbfs: deque[float] = deque(
            maxlen=max(1, self.settings.noise_window_ms // FRAME_MS)
        )

    def reset(self) -> None:
        self._set_state(VadState.QUIET)
        self._voiced_ms = 0

    def _set_state(self, state: VadState) -> None:
        if state is not self.state:
            log.debug("vad %s -> %s", self.state.value, state.value)
            self.state = state

    def is_voiced(self, frame: np.ndarray) -> bool:
        """The per-frame decision: webrtcvad, a level floor and the tone guard."""
        level = frame_dbfs(frame)
        self._levels_dbfs.append(level)
        floor = min(self._levels_dbfs)
        if level < self.settings.min_level_dbfs or level < floor + self.settings.above_noise_db:
            return False
        if not self._vad.is_speech(frame.astype("<i2").tobytes(), SAMPLE_RATE_HZ):
            return False
        return not is_tone_pair(frame)

    def feed(self, frame: bytes | np.ndarray, now_ms: int) -> list[VadEvent]:
        """Take one 20 ms frame (160 int16 samples) that began at ``now_ms``."""
        samples = np.frombuffer(frame, dtype="<i2") if isinstance(frame, bytes) else frame
        if samples.size != FRAME_SAMPLES:
            raise ValueError(
                f"VAD frame has {samples.size} samples; expected {FRAME_SAMPLES} "
                f"({FRAME_MS} ms at {SAMPLE_RATE_HZ} Hz)"
            )
        if self.state is VadState.ENDED:
            return []
        voiced = self.is_voiced(samples)
        s = self.settings
        events: list[VadEvent] = []
        if self.state is VadState.QUIET:
            if voiced:
                self._set_state(VadState.ONSET)
                self._run_start_ms = now_ms
                self._voiced_ms = FRAME_MS
                self._last_voiced_ms = now_ms
        elif self.state is VadState.ONSET:
            if voiced:
                self._voiced_ms += FRAME_MS
                self._last_voiced_ms = now_ms
            elif now_ms - self._last_voiced_ms > s.onset_gap_ms:
                self._set_state(VadState.QUIET)
        if self.state is VadState.ONSET and self._voiced_ms >= s.min_speech_ms:
            self._set_state(VadState.SPEAKING)
            self._onset_ms = self._run_start_ms
            events.append(SpeechStarted(onset_ms=self._onset_ms, detected_ms=now_ms + FRAME_MS))
        elif self.state is VadState.SPEAKING:
            if voiced:
                self._last_voiced_ms = now_ms
            end_ms = now_ms + FRAME_MS
            if end_ms - (self._last_voiced_ms + FRAME_MS) >= s.end_silence_ms:
                self._set_state(VadState.ENDED)
                speech_end_ms = self._last_voiced_ms + FRAME_MS
                events.append(SpeechEnded(self._onset_ms, speech_end_ms, "silence"))
            elif end_ms - self._onset_ms >= s.max_utterance_ms:
                self._set_state(VadState.ENDED)
                events.append(SpeechEnded(self._onset_ms, end_ms, "max_length"))
        return events
