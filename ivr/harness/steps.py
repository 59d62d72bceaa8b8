"""What each scenario step does on a harness call (see :mod:`ivr.harness.call`).

Every function waits (through ``ctx.wait``/``ctx.pump``, which take in audio and events),
returns a short detail for the report on success, and raises
:class:`~ivr.harness.call.StepFailed` with what was heard instead on failure.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import analysis
from .fingerprint import EARLY_FRAMES, HOP_MS, HOP_SAMPLES, MATCH_BER
from .prompt_index import KnownPrompt
from .scenario import (
    Check,
    ExpectHangup,
    ExpectMusic,
    ExpectPrompt,
    ExpectSilence,
    ExpectTone,
    Hangup,
    Play,
    Press,
    Say,
    Wait,
)
from .search import PromptSearch

if TYPE_CHECKING:
    from .call import CallContext

_SLACK_S = 1.5  # beyond a prompt's own length, for the jitter buffer and a slow poll
_VOICED_DBFS = -40.0  # a fingerprint frame above this is sound (speech), not line noise
_TWIN_MARGIN = 0.02  # another prompt fits this much better at the same place: it was that one


class StepFailed(Exception):
    """A step's expectation was not met; the message says what was heard instead."""


def _failed(msg: str) -> StepFailed:
    return StepFailed(msg)


def heard_since(ctx: CallContext, frame: int) -> str:
    """What was heard from fingerprint frame ``frame`` on, for a failure message."""
    found = ctx.index.identify(ctx.heard, frame, MATCH_BER)
    levels = ctx.heard.level_dbfs[frame:]
    voiced_s = float((levels > -40).sum()) * HOP_MS / 1000
    if ctx.transcriber is not None and voiced_s > 0:
        text = ctx.transcriber.transcribe(ctx.samples_since(frame), analysis.SAMPLE_RATE_HZ)
        if text:
            return f"transcript {text!r}"
    if found:
        return "prompts " + ", ".join(label for _, label in found)
    if voiced_s == 0:
        return "silence"
    return f"{voiced_s:.1f} s of audio that is no known prompt"


def _ended(ctx: CallContext) -> str:
    h = ctx.hungup
    assert h is not None
    return f"the call ended ({h.side.value} hang-up, {h.status_code} {h.reason})"


def _candidates(ctx: CallContext, step: ExpectPrompt) -> list[KnownPrompt]:
    if step.text is not None:
        found = ctx.index.resolve_text(step.text, step.min_confidence)
        if not found and ctx.transcriber is not None:
            return []  # checked by transcript
        if not found:
            raise _failed(f"no prompt of the sets reads like {step.text!r} "
                          f"(similarity >= {step.min_confidence})")
        return [p for _, p in found]
    sets = [step.set] if step.set else sorted(ctx.index.sets())
    out = [p for s in sets if (p := ctx.index.get(s, step.name or "")) is not None]
    if not out:
        raise _failed(f"no prompt {step.name!r} in the prompt sets")
    return out


async def expect_prompt(ctx: CallContext, step: ExpectPrompt) -> str:
    wanted = _candidates(ctx, step)
    if not wanted:
        return await _expect_by_transcript(ctx, step)
    start_frame, started = ctx.consumed_frame, time.monotonic()
    # the call's first prompt may have begun before the ear was attached
    first = -EARLY_FRAMES if start_frame == 0 else start_frame
    searches = [(p, PromptSearch(p.print, first)) for p in wanted]
    longest_s = max(p.print.duration_ms for p in wanted) / 1000
    deadline = started + step.within_ms / 1000 + longest_s + _SLACK_S
    what = " or ".join(p.key for p in wanted)
    while time.monotonic() < deadline:
        await ctx.wait(0.2)
        ended = ctx.hungup is not None  # what was heard is all there will be
        for prompt, search in searches:
            match = search.poll(ctx.heard, final=ended)
            if match is None:
                continue
            # a near twin starts where the prompt does: a few frames either side suffice
            best = ctx.index.best_at(ctx.heard, match.frame, slack=8,
                                     length_frames=prompt.print.frames)
            if best is not None and best[1].key != prompt.key and \
                    best[0] < match.ber - _TWIN_MARGIN:
                raise _failed(f"expected {what}, heard {best[1].key} (BER {best[0]:.2f} "
                              f"against {match.ber:.2f})")
            # the prompt's sound begins sound_lead_samples before the match (its print
            # starts at its first voiced window)
            at = ctx.rtp_time(match.frame * HOP_SAMPLES - prompt.sound_lead_samples)
            late_ms = (at - max(started, ctx.last_key_at or 0)) * 1000
            if ctx.last_key_at is not None:
                ctx.key_to_prompt_ms.append((at - ctx.last_key_at) * 1000)
                ctx.last_key_at = None
            ctx.consumed_frame = match.frame + prompt.print.frames
            if late_ms > step.within_ms:
                raise _failed(f"{prompt.key} began {late_ms:.0f} ms after the step, not "
                              f"within {step.within_ms} ms")
            return f"{prompt.key} (BER {match.ber:.2f})"
        if ctx.hungup is not None:
            break
    heard = heard_since(ctx, start_frame)
    if ctx.hungup is not None:
        raise _failed(f"expected {what}; {_ended(ctx)}; heard {heard}")
    raise _failed(f"expected {what} within {step.within_ms} ms; heard {heard}")


async def _expect_by_transcript(ctx: CallContext, step: ExpectPrompt) -> str:
    """Speech beginning within ``within_ms``, heard until END_SILENCE_MS of quiet, whose
    transcript reads like the step's text (ivr/harness/transcribe.py)."""
    import asyncio

    from .transcribe import END_SILENCE_MS, MAX_UTTERANCE_S, verdict

    assert ctx.transcriber is not None and step.text is not None
    start_frame, started = ctx.consumed_frame, time.monotonic()
    quiet_frames = int(END_SILENCE_MS / HOP_MS)
    first: int | None = None
    while True:
        await ctx.wait(0.2)
        voiced = np.flatnonzero(ctx.heard.level_dbfs[start_frame:] > _VOICED_DBFS)
        if first is None and voiced.size:
            first = start_frame + int(voiced[0])
        now = time.monotonic()
        if first is None:
            if ctx.hungup is not None or now > started + step.within_ms / 1000 + _SLACK_S:
                end = f"; {_ended(ctx)}" if ctx.hungup is not None else ""
                raise _failed(f"expected speech reading {step.text!r} within "
                              f"{step.within_ms} ms{end}; heard silence")
            continue
        last = start_frame + int(voiced[-1])
        if ctx.now_frame() - last >= quiet_frames or ctx.hungup is not None or \
                now > ctx.frame_time(first) + MAX_UTTERANCE_S:
            break
    pcm = ctx.samples_since(max(0, first - 25))[: (last - first + 50) * HOP_SAMPLES]
    heard = await asyncio.get_running_loop().run_in_executor(
        None, ctx.transcriber.hears, pcm, analysis.SAMPLE_RATE_HZ, step.text)
    ok, said = verdict(step.text, heard, step.min_confidence)
    at = ctx.rtp_time(first * HOP_SAMPLES)
    if ctx.last_key_at is not None:
        ctx.key_to_prompt_ms.append((at - ctx.last_key_at) * 1000)
        ctx.last_key_at = None
    ctx.consumed_frame = last + 1
    if not ok:
        raise _failed(f"expected speech reading {step.text!r} (>= {step.min_confidence}); "
                      f"heard {said}")
    late_ms = (at - started) * 1000
    if late_ms > step.within_ms:
        raise _failed(f"the speech began {late_ms:.0f} ms after the step, not within "
                      f"{step.within_ms} ms")
    return said


async def press(ctx: CallContext, step: Press) -> str:
    method = step.method or ctx.scenario.dtmf
    await ctx.send_digits(step.digits.upper(), method, step.gap_ms)
    return f"{step.digits} by {method}"


def _to_8k(src: Path, dst: Path) -> Path:
    sox = shutil.which("sox")
    if sox is None:
        raise _failed("sox is needed to convert audio for the call (apt-get install sox)")
    proc = subprocess.run([sox, str(src), "-r", "8000", "-c", "1", "-b", "16", "-e",
                           "signed-integer", str(dst)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise _failed(f"sox could not convert {src}: {proc.stderr.strip()}")
    return dst


async def say(ctx: CallContext, step: Say) -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise _failed("espeak-ng is needed for say steps (apt-get install espeak-ng)")
    raw = ctx.workdir / f"say-{abs(hash((step.text, step.voice)))}.wav"
    out = raw.with_suffix(".8k.wav")
    if not out.exists():
        proc = subprocess.run([espeak, "-v", step.voice, "-w", str(raw), step.text],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise _failed(f"espeak-ng failed: {proc.stderr.strip()}")
        _to_8k(raw, out)
    await ctx.play_file(out)
    return f"said {step.text!r}"


async def play(ctx: CallContext, step: Play) -> str:
    src = Path(ctx.scenario.path).parent / step.wav
    out = ctx.workdir / f"play-{src.stem}.8k.wav"
    if not out.exists():
        _to_8k(src, out)
    await ctx.play_file(out)
    return f"played {step.wav}"


async def expect_silence(ctx: CallContext, step: ExpectSilence) -> str:
    start_frame = ctx.now_frame()
    await ctx.wait(step.ms / 1000)
    levels = ctx.heard.level_dbfs[start_frame:]
    loud = np.flatnonzero(levels > -40)
    if ctx.hungup is not None:
        raise _failed(f"expected {step.ms} ms of silence; {_ended(ctx)}")
    if loud.size:
        raise _failed(f"expected {step.ms} ms of silence; after {loud[0] * HOP_MS:.0f} ms "
                      f"heard {heard_since(ctx, start_frame + int(loud[0]))}")
    ctx.consumed_frame = ctx.now_frame()
    return f"{step.ms} ms of silence"


async def _sound_step(ctx: CallContext, ms: int, within_ms: int, kind: str, hz: float = 0.0
                      ) -> str:
    start_frame, started = ctx.consumed_frame, time.monotonic()
    need = ms // 20
    while time.monotonic() < started + (within_ms + ms) / 1000 + 0.5:
        await ctx.wait(0.1)
        pcm = ctx.samples_since(start_frame)
        if kind == "tone":
            flags = analysis.tone_frames(pcm, hz)
        else:
            flags = analysis.frame_levels_dbfs(pcm) > -45
        first, length = analysis.longest_run(flags)
        if length >= need:
            frame0 = start_frame + first * 160 // 32
            if kind == "music" and ctx.index.identify(ctx.heard, frame0, MATCH_BER):
                start_frame = ctx.now_frame()  # a prompt, not music: look after it
                continue
            ctx.consumed_frame = ctx.now_frame()
            return f"{kind} for {length * 20} ms"
        if ctx.hungup is not None:
            break
    extra = f"; {_ended(ctx)}" if ctx.hungup is not None else ""
    what = f"a {hz:g} Hz tone" if kind == "tone" else "hold music"
    raise _failed(f"expected {what} for {ms} ms within {within_ms} ms{extra}; heard "
                  f"{heard_since(ctx, ctx.consumed_frame)}")


async def expect_hangup(ctx: CallContext, step: ExpectHangup) -> str:
    start_frame = ctx.consumed_frame
    deadline = time.monotonic() + step.within_s
    while ctx.hungup is None and time.monotonic() < deadline:
        await ctx.wait(0.05)
    h = ctx.hungup
    if h is None:
        raise _failed(f"no hang-up within {step.within_s:g} s; heard "
                      f"{heard_since(ctx, start_frame)}")
    if h.side.value != "remote":
        raise _failed(f"the call ended on our side ({h.status_code} {h.reason})")
    if step.cause is not None and h.status_code != step.cause:
        raise _failed(f"hang-up cause {h.status_code} {h.reason}, expected {step.cause}")
    return f"hung up by the far end ({h.status_code} {h.reason})"


async def hangup(ctx: CallContext, step: Hangup) -> str:
    if ctx.hungup is not None:
        raise _failed(f"nothing to hang up: {_ended(ctx)}")
    assert ctx.leg is not None
    await ctx.pump()
    from media.probe import stream_stats
    ctx.stats = await stream_stats(ctx.leg) or ctx.stats
    await ctx.leg.hangup()
    deadline = time.monotonic() + 5
    while ctx.hungup is None and time.monotonic() < deadline:
        await ctx.wait(0.02)
    return "hung up (BYE)"


def _compare(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is want
    return str(got) == str(want)


async def check(ctx: CallContext, step: Check) -> str:
    if ctx.records is None:
        raise _failed("a check needs the stack's call store: run with --config or --db")
    if ctx.hungup is None:
        raise _failed("a check reads the call's record once it has ended: put it after "
                      "hangup or expect_hangup")
    assert ctx.leg is not None
    import asyncio

    view = await asyncio.get_running_loop().run_in_executor(
        None, ctx.records.ended_call, ctx.leg.sip_call_id)
    if view is None:
        raise _failed(f"no ended call with SIP Call-ID {ctx.leg.sip_call_id!r} in "
                      f"{ctx.records.db_path}")
    wrong = []
    for key, want in step.fields.items():
        if key == "queue":
            if str(want) not in view.queues():
                wrong.append(f"queue {want!r} not reached (reached: "
                             f"{', '.join(sorted(view.queues())) or 'none'})")
        elif key == "event":
            kinds = [k for k, _ in view.events]
            if str(want) not in kinds:
                wrong.append(f"no {want!r} event (events: {' '.join(kinds)})")
        else:
            name = key.removeprefix("cdr.")
            if name not in view.cdr:
                wrong.append(f"{key}: no such call record field "
                             f"({', '.join(sorted(view.cdr))})")
            elif not _compare(view.cdr[name], want):
                wrong.append(f"{key} is {view.cdr[name]!r}, expected {want!r}")
    if wrong:
        raise _failed("; ".join(wrong))
    return f"{len(step.fields)} field(s) as expected"


async def run_step(ctx: CallContext, kind: str, step: Any) -> str:
    if isinstance(step, ExpectPrompt):
        return await expect_prompt(ctx, step)
    if isinstance(step, Press):
        return await press(ctx, step)
    if isinstance(step, Say):
        return await say(ctx, step)
    if isinstance(step, Play):
        return await play(ctx, step)
    if isinstance(step, ExpectSilence):
        return await expect_silence(ctx, step)
    if isinstance(step, ExpectTone):
        return await _sound_step(ctx, step.ms, step.within_ms, "tone", step.hz)
    if isinstance(step, ExpectMusic):
        return await _sound_step(ctx, step.ms, step.within_ms, "music")
    if isinstance(step, Wait):
        await ctx.wait(step.ms / 1000)
        return f"waited {step.ms} ms"
    if isinstance(step, ExpectHangup):
        return await expect_hangup(ctx, step)
    if isinstance(step, Hangup):
        return await hangup(ctx, step)
    if isinstance(step, Check):
        return await check(ctx, step)
    raise _failed(f"step {kind!r} is not implemented")
