"""One scripted call: a scenario played against the stack on a ``media`` phone.

The call dials, attaches an ear (:mod:`media.probe`) once media is up, and runs its steps in
order; every step either passes, with its timing, or fails naming what was heard instead.
The first failure ends the call (we hang up). Audio is analysed as it arrives: a
:class:`~ivr.harness.fingerprint.StreamFingerprint` of everything heard, and the 20 ms frame
arrival times (``time.monotonic()``) that turn a frame into a moment.

Timings (ms): post-dial delay (INVITE to the first 18x, or to the answer), time to first
audio (answer to the first frame above -40 dBFS), key to prompt (the last key of a press to
the RTP packet that brought the beginning of the next prompt's sound: :meth:`CallContext.rtp_time`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from media import (
    DtmfMethod,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    MediaReady,
    PjsipError,
)
from media.leg import SipCallLeg, wav_duration_s
from media.phone import Phone
from media.probe import Ear, StreamStats, listen, stream_stats

from . import analysis, steps
from .fingerprint import HOP_SAMPLES, StreamFingerprint
from .prompt_index import PromptIndex, Transcriber
from .records import CallRecords
from .scenario import Scenario
from .steps import StepFailed

# How often a waiting step takes in audio and events. Timings come from the frames' own
# arrival times, so a slower poll costs no accuracy, only CPU (and up to this much delay
# before the next step acts).
POLL_S = 0.1
FIRST_AUDIO_DBFS = -40.0


@dataclass
class StepResult:
    index: int
    kind: str
    label: str
    ok: bool
    at_ms: float  # from the dial
    duration_ms: float
    detail: str = ""


@dataclass
class CallResult:
    scenario: str
    name: str
    ok: bool = False
    failure: str = ""
    failed_step: str = ""
    sip_call_id: str = ""
    steps: list[StepResult] = field(default_factory=list)
    post_dial_delay_ms: float | None = None
    time_to_first_audio_ms: float | None = None
    key_to_prompt_ms: list[float] = field(default_factory=list)
    rx_packets: int = 0
    rx_lost: int = 0
    loss_ratio: float = 0.0
    jitter_ms: float = 0.0
    jitter_buffer_ms: float | None = None  # heard audio lags RTP arrival by about this
    mos: float | None = None
    one_way_audio: bool = False
    duration_s: float = 0.0
    heard_wav: str = ""  # what the call heard, with --keep-audio

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["steps"] = [s.__dict__ for s in self.steps]
        return d


@dataclass
class CallContext:
    """What steps share: the leg, what was heard, and the call's clock marks."""

    phone: Phone
    scenario: Scenario
    index: PromptIndex
    workdir: Path
    records: CallRecords | None
    transcriber: Transcriber | None
    leg: SipCallLeg | None = None
    ear: Ear | None = None
    heard: StreamFingerprint = field(default_factory=StreamFingerprint)
    pcm: list[npt.NDArray[np.int16]] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)  # per 20 ms frame heard
    consumed_frame: int = 0  # fingerprint frames before this belong to earlier steps
    last_key_at: float | None = None
    dial_at: float = 0.0
    answered_at: float | None = None
    first_audio_at: float | None = None
    hungup: LegHungUp | None = None
    failed: LegFailed | None = None
    ringing_at: float | None = None
    media: MediaReady | None = None
    stats: StreamStats | None = None
    key_to_prompt_ms: list[float] = field(default_factory=list)
    _stats_due: float = 0.0

    def frame_time(self, frame: int) -> float:
        """time.monotonic() at which fingerprint frame ``frame`` began to arrive."""
        k = frame * HOP_SAMPLES // analysis.FRAME_SAMPLES
        if not self.frame_times:
            return time.monotonic()
        if frame < 0:  # a prompt that began before the ear was attached
            return self.frame_times[0] + frame * HOP_SAMPLES / analysis.SAMPLE_RATE_HZ
        return self.frame_times[min(k, len(self.frame_times) - 1)]

    def rtp_time(self, sample: int) -> float:
        """time.monotonic() at which the RTP packet carrying heard sample ``sample`` arrived:
        its 20 ms frame left our jitter buffer (``frame_times``) PJMEDIA's mean delay of a
        frame in that buffer (``jitter_buffer_ms``, read every second) after the packet came."""
        if not self.frame_times:
            at = time.monotonic()
        elif sample < 0:  # before the ear was attached
            at = self.frame_times[0] + sample / analysis.SAMPLE_RATE_HZ
        else:
            at = self.frame_times[min(sample // analysis.FRAME_SAMPLES,
                                      len(self.frame_times) - 1)]
        delay_ms = self.stats.jitter_buffer_ms if self.stats is not None else 0.0
        return at - delay_ms / 1000

    def now_frame(self) -> int:
        return self.heard.frames

    def samples_since(self, frame: int) -> npt.NDArray[np.int16]:
        if not self.pcm:
            return np.zeros(0, np.int16)
        if len(self.pcm) > 1:
            self.pcm = [np.concatenate(self.pcm)]
        return self.pcm[0][frame * HOP_SAMPLES:]

    async def pump(self) -> None:
        """Take events and audio that arrived; called by every waiting step."""
        leg = self.leg
        if leg is not None:
            while leg.pending_events():
                self._on_event(await leg.next_event())
        if self.ear is not None:
            samples, times = self.ear.drain()
            if samples.size:
                self.pcm.append(samples)
                self.frame_times.extend(times)
                self.heard.feed(samples)
                if self.first_audio_at is None:
                    levels = analysis.frame_levels_dbfs(samples)
                    loud = np.flatnonzero(levels > FIRST_AUDIO_DBFS)
                    if loud.size:
                        self.first_audio_at = times[min(int(loud[0]), len(times) - 1)]
        now = time.monotonic()
        if leg is not None and self.media is not None and self.hungup is None \
                and now >= self._stats_due:
            self._stats_due = now + 1.0
            stats = await stream_stats(leg)
            if stats is not None:
                self.stats = stats

    def _on_event(self, event: object) -> None:
        now = time.monotonic()
        if isinstance(event, LegRinging) and self.ringing_at is None:
            self.ringing_at = now
        elif isinstance(event, LegAnswered):
            self.answered_at = now
        elif isinstance(event, MediaReady):
            self.media = event
        elif isinstance(event, LegFailed):
            self.failed = event
        elif isinstance(event, LegHungUp):
            self.hungup = event

    async def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            await self.pump()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(POLL_S, left))

    async def play_file(self, wav: Path) -> None:
        """Play a WAV to the far end and wait for its end (the time it lasts)."""
        assert self.leg is not None
        if self.hungup is not None:
            raise StepFailed("the call has ended")
        await self.leg.play([wav])
        await self.wait(wav_duration_s(wav) + 0.04)

    async def send_digits(self, digits: str, method: str, gap_ms: int) -> None:
        assert self.leg is not None
        if method == "inband":
            wav = self.workdir / f"dtmf-{digits.replace('*', 's').replace('#', 'p')}.wav"
            if not wav.exists():
                from media.pcm import write_wav_mono16
                write_wav_mono16(wav, analysis.dtmf_pcm(digits, gap_ms=max(gap_ms, 60)),
                                 analysis.SAMPLE_RATE_HZ)
            await self.play_file(wav)
            self.last_key_at = time.monotonic()
            return
        how = DtmfMethod.SIP_INFO if method == "sip-info" else DtmfMethod.RFC4733
        for i, digit in enumerate(digits):
            if self.hungup is not None:
                raise StepFailed(f"the call ended before key {digit!r}")
            await self.leg.send_dtmf(digit, how)
            self.last_key_at = time.monotonic()
            if i < len(digits) - 1:
                await self.wait(gap_ms / 1000)


async def run_call(phone: Phone, scenario: Scenario, index: PromptIndex, workdir: Path,
                   records: CallRecords | None = None, transcriber: Transcriber | None = None,
                   on_step: Any = None, answer_timeout_s: float = 30.0,
                   keep_audio: Path | None = None) -> CallResult:
    """Place the scenario's call and run its steps; ``on_step(StepResult)`` after each."""
    result = CallResult(scenario.path, scenario.name)
    ctx = CallContext(phone, scenario, index, workdir, records, transcriber)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx.dial_at = time.monotonic()
    try:
        ctx.leg = await _place(phone, scenario)
        result.sip_call_id = ctx.leg.sip_call_id
        ctx.ear = await listen(ctx.leg)  # armed now: connected as the media comes up
        await _until_media(ctx, answer_timeout_s)
        for i, (kind, step) in enumerate(scenario.steps):
            label = scenario.step_label(i)
            started = time.monotonic()
            try:
                detail = await steps.run_step(ctx, kind, step)
                ok = True
            except StepFailed as exc:
                detail, ok = str(exc), False
            res = StepResult(i + 1, kind, label, ok, (started - ctx.dial_at) * 1000,
                             (time.monotonic() - started) * 1000, detail)
            result.steps.append(res)
            if on_step is not None:
                on_step(res)
            if not ok:
                result.failure, result.failed_step = detail, label
                break
        else:
            result.ok = True
    except StepFailed as exc:  # before the first step: the call was not set up
        result.failure, result.failed_step = str(exc), "dial"
    finally:
        await _finish(ctx, result)
    if keep_audio is not None and ctx.pcm:
        from media.pcm import write_wav_mono16

        keep_audio.mkdir(parents=True, exist_ok=True)
        wav = keep_audio / f"{Path(scenario.path).stem}-{result.sip_call_id[:8]}.wav"
        write_wav_mono16(wav, ctx.samples_since(0), analysis.SAMPLE_RATE_HZ)
        result.heard_wav = str(wav)
    return result


async def _place(phone: Phone, scenario: Scenario) -> SipCallLeg:
    """Place the call; while every PJSUA call slot is still held by calls that ended a moment
    ago (PJ_ETOOMANY), try again for up to 2 s."""
    for _ in range(10):
        try:
            return await phone.place_call(scenario.dial, scenario.headers or None)
        except PjsipError as exc:
            if "PJ_ETOOMANY" not in str(exc):
                raise
            await asyncio.sleep(0.2)
    return await phone.place_call(scenario.dial, scenario.headers or None)


async def _until_media(ctx: CallContext, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while ctx.media is None:
        await ctx.pump()
        if ctx.failed is not None:
            raise StepFailed(f"the call was refused: {ctx.failed.status_code} "
                             f"{ctx.failed.reason}")
        if ctx.hungup is not None:
            raise StepFailed(f"the call ended before media: {ctx.hungup.status_code} "
                             f"{ctx.hungup.reason}")
        if time.monotonic() > deadline:
            raise StepFailed(f"no answer with media within {timeout_s:g} s")
        await asyncio.sleep(POLL_S / 5)


async def _finish(ctx: CallContext, result: CallResult) -> None:
    leg = ctx.leg
    if leg is not None and ctx.hungup is None:
        await ctx.pump()
        stats = await stream_stats(leg) if leg.ended is None else None
        ctx.stats = stats or ctx.stats
        await leg.hangup()
        deadline = time.monotonic() + 5
        while ctx.hungup is None and time.monotonic() < deadline:
            await ctx.wait(POLL_S)
    first = ctx.ringing_at or ctx.answered_at
    if first is not None:
        result.post_dial_delay_ms = round((first - ctx.dial_at) * 1000, 1)
    if ctx.answered_at is not None and ctx.first_audio_at is not None:
        result.time_to_first_audio_ms = round((ctx.first_audio_at - ctx.answered_at) * 1000, 1)
    result.key_to_prompt_ms = [round(x, 1) for x in ctx.key_to_prompt_ms]
    stats = ctx.stats
    if stats is not None:
        result.rx_packets, result.rx_lost = stats.rx_packets, stats.rx_lost
        result.loss_ratio = round(stats.loss_ratio, 4)
        result.jitter_ms = round(stats.rx_jitter_ms, 2)
        result.jitter_buffer_ms = round(stats.jitter_buffer_ms, 1)
        # one-way delay: half the RTCP round trip when known, plus packetisation (20 ms) and
        # a jitter buffer of twice the jitter
        delay = (stats.rtt_ms / 2 if stats.rtt_ms else 0.0) + 20 + 2 * stats.rx_jitter_ms
        result.mos = analysis.emodel_mos(stats.loss_ratio, delay)
    if ctx.media is not None:
        result.one_way_audio = ctx.first_audio_at is None or (
            stats is not None and stats.rx_packets == 0)
    result.duration_s = round(time.monotonic() - ctx.dial_at, 3)
