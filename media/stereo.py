"""Two-channel recording of a bridged call: the caller on the left, the agent on the right.

PJMEDIA's WAV writer is mono (pjsua's recorder takes the bridge's channel count), so each
side gets a recorder of its own, fed by the conference bridge in C on its clock thread
(no Python per frame). The two start in one pump command, a bridge tick apart at most,
and are joined into one stereo WAV when the recording stops: one numpy interleave over
the whole file. A side that ended first (its leg hung up) recorded less: it is padded with
silence at the end, so both channels keep their time. The parts are written and closed by
PJMEDIA like any recording (see media/phone.py), so a leg that ends abruptly still leaves
complete WAVs to join; only if the worker itself dies before ``stop()`` are the two mono
parts (``NAME.left.wav``, ``NAME.right.wav``) left instead of the stereo file.
"""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pjsua2 as pj

from .bridge import set_link
from .errors import LegBusyError, MediaError
from .leg import sip_leg

if TYPE_CHECKING:
    from .leg import CallLeg
    from .phone import Phone

CLOSE_TIMEOUT_S = 2.0  # how long stop() waits for PJMEDIA to close the two parts


@dataclass(eq=False)
class _Sink:
    """A recorder as the end of a bridge link (media.bridge.set_link's ``dst``)."""

    audio: pj.AudioMediaRecorder | None
    disconnected: bool = False
    links: dict[Any, float] = field(default_factory=dict)


def part_paths(path: Path) -> tuple[Path, Path]:
    return path.with_name(f"{path.stem}.left.wav"), path.with_name(f"{path.stem}.right.wav")


def _open(phone: Phone, left: Any, right: Any, paths: tuple[Path, Path]) -> list[_Sink]:
    """Pump thread: one recorder per side, connected from that leg's audio."""
    sinks: list[_Sink] = []
    try:
        for state, part in zip((left, right), paths, strict=True):
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(part))
            sink = _Sink(recorder)
            sinks.append(sink)
            phone._open_sinks.add(sink)
            set_link(state, sink, 1.0)
    except BaseException:
        _close(phone, sinks, left, right, paths)
        raise
    phone._clock_priority.expect()
    return sinks


def _close(phone: Phone, sinks: list[_Sink], left: Any, right: Any,
           paths: tuple[Path, Path]) -> None:
    """Pump thread: forget the links and release the recorders (PJMEDIA closes the WAVs)."""
    for state in (left, right):
        for sink in sinks:
            state.links.pop(sink, None)
    for sink, part in zip(sinks, paths, strict=False):
        recorder, sink.audio = sink.audio, None
        sink.disconnected = True
        phone._open_sinks.discard(sink)
        if recorder is not None:
            phone._retire_recorder(recorder, part)


def join_channels(left: Path, right: Path, out: Path) -> float:
    """Interleave two mono 16-bit WAVs into a stereo one (the shorter padded with silence);
    returns its duration in seconds."""
    channels = []
    rate_hz = 0
    for part in (left, right):
        with wave.open(str(part), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise MediaError(f"{part}: expected mono 16-bit PCM")
            rate_hz = w.getframerate()
            channels.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    frames = max(c.size for c in channels)
    stereo = np.zeros((frames, 2), dtype="<i2")
    for n, pcm in enumerate(channels):
        stereo[: pcm.size, n] = pcm
    tmp = out.with_name(out.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(stereo.tobytes())
    tmp.replace(out)  # the stereo file appears whole or not at all
    return frames / rate_hz


class TwoChannelRecording:
    """``await rec.start()`` ... ``await rec.stop()`` -> seconds; ``path`` is then a stereo
    16-bit WAV at the bridge's clock rate, ``left`` on channel 1, ``right`` on channel 2."""

    def __init__(self, phone: Phone, left: CallLeg, right: CallLeg, path: Path) -> None:
        if path.suffix.lower() != ".wav":
            raise ValueError(f"a recording is written as WAV: {path} does not end in .wav")
        if left is right:
            raise ValueError("a two-channel recording needs two different legs")
        self.path = path
        self._phone = phone
        self._left, self._right = sip_leg(left), sip_leg(right)
        self._parts = part_paths(path)
        self._sinks: list[_Sink] | None = None
        self._stopped = False

    async def start(self) -> None:
        if self._sinks is not None or self._stopped:
            raise LegBusyError(f"the recording {self.path} was already started")
        self._left._check()
        self._right._check()
        ls, rs, phone, parts = self._left._handle, self._right._handle, self._phone, self._parts
        self._sinks = await phone.submit(lambda: _open(phone, ls, rs, parts))

    async def stop(self) -> float:
        """Stop both sides (also after either leg ended), join them, return the duration."""
        sinks = self._sinks
        if sinks is None or self._stopped:
            raise MediaError(f"the recording {self.path} is not running")
        self._stopped = True
        ls, rs, phone, parts = self._left._handle, self._right._handle, self._phone, self._parts
        await phone.submit(lambda: _close(phone, sinks, ls, rs, parts))
        for part in parts:
            await phone._wav_closed(part, CLOSE_TIMEOUT_S)
        duration_s = await asyncio.to_thread(join_channels, *parts, self.path)
        for part in parts:
            part.unlink()
        return duration_s
