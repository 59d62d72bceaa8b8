"""A `media.phone.Phone` started in-process on loopback, for tests of the media layer.

No worker and no flow: the test answers the incoming legs itself and drives them, while a
sipp scenario (run in a thread) plays the caller. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from media import CallLeg, LegEvent, LegHungUp, MediaReady, SipCallLeg
from media.phone import Phone, PhoneConfig
from tests.conftest import free_sip_port

E = TypeVar("E", bound=LegEvent)


@dataclass
class LegProbe:
    """A leg and every event it has delivered so far (the test reads them in order)."""

    leg: SipCallLeg
    events: list[LegEvent] = field(default_factory=list)

    async def wait_for(self, kind: type[E], timeout_s: float = 10.0) -> E:
        """The first event of ``kind`` (already seen, or the next one to come)."""
        for event in self.events:
            if isinstance(event, kind):
                return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout_s} s: {self.events}")
            try:
                event = await asyncio.wait_for(self.leg.next_event(), remaining)
            except TimeoutError:
                continue
            self.events.append(event)
            if isinstance(event, kind):
                return event

    def of(self, kind: type[E]) -> list[E]:
        """Events of ``kind`` delivered so far (after draining the leg's queue)."""
        while self.leg.pending_events():
            self.events.append(self.leg._events.get_nowait())
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class PhoneHarness:
    phone: Phone
    legs: asyncio.Queue[CallLeg]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.phone.config.sip_port}"

    async def next_leg(self, timeout_s: float = 10.0) -> LegProbe:
        leg = await asyncio.wait_for(self.legs.get(), timeout_s)
        assert isinstance(leg, SipCallLeg)
        return LegProbe(leg)

    async def answered_leg(self, timeout_s: float = 10.0) -> tuple[LegProbe, MediaReady]:
        """The next incoming leg, answered 200, once its audio flows."""
        probe = await self.next_leg(timeout_s)
        await probe.leg.answer(200)
        return probe, await probe.wait_for(MediaReady, timeout_s)

    async def hang_up(self, probe: LegProbe, timeout_s: float = 5.0) -> None:
        if probe.leg.ended is None:
            await probe.leg.hangup()
        await probe.wait_for(LegHungUp, timeout_s)


@asynccontextmanager
async def running_phone(**overrides: object) -> AsyncIterator[PhoneHarness]:
    """A started Phone on a spare SIP port (UDP, loopback) and its own RTP ports."""
    port = free_sip_port()
    settings: dict[str, object] = {
        "bind_address": "127.0.0.1",
        "sip_port": port,
        "transports": ("udp",),
        "rtp_port": 10000 + 40 * (((port - 5200) // 10) % 100),
        "rtp_port_range": 40,
        "pump_timeout_ms": 100,
    }
    settings.update(overrides)
    legs: asyncio.Queue[CallLeg] = asyncio.Queue()
    phone = Phone(PhoneConfig(**settings), legs.put_nowait)  # type: ignore[arg-type]
    await phone.start()
    try:
        yield PhoneHarness(phone, legs)
    finally:
        await asyncio.wait_for(phone.stop(grace_s=2.0), 15)


# -- audio helpers ---------------------------------------------------------------------


def tone(freq_hz: float, duration_s: float, level_dbfs: float = -10.0,
         rate_hz: int = 8000) -> np.ndarray:
    """A sine of ``level_dbfs`` peak, int16."""
    t = np.arange(int(rate_hz * duration_s)) / rate_hz
    return (32767 * 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def silence(duration_s: float, rate_hz: int = 8000) -> np.ndarray:
    return np.zeros(int(rate_hz * duration_s), dtype=np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate_hz: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def wav_is_closed(path: Path) -> bool:
    """The RIFF and data lengths in the header match the file: the writer closed it."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    riff_len = int.from_bytes(data[4:8], "little")
    data_len = int.from_bytes(data[40:44], "little")
    return riff_len == len(data) - 8 and data_len == len(data) - 44


def read_wav(path: Path) -> tuple[Any, np.ndarray]:
    """The WAV's parameters (``wave`` module's named tuple) and its samples."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        pcm = np.frombuffer(w.readframes(params.nframes), dtype="<i2")
    return params, pcm


def band_power(pcm: np.ndarray, rate_hz: int, freq_hz: float, width_hz: float = 20.0) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate_hz)
    return float(spectrum[np.abs(freqs - freq_hz) <= width_hz].sum())


def dominant_hz(pcm: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate_hz)[int(np.argmax(spectrum))])
