"""Sound devices through PortAudio (``sounddevice``): listing, choosing with fallback, the
hot-plug watch, and the streams between a device and the call's ring buffers.

Choosing (:func:`choose`) is pure: the devices seen now and the agent's remembered choice
(a device name) in, the device to open and a warning out. A remembered headset that is
missing falls back to the system default **with a warning the window shows**; when the
only device left looks like the laptop's own speaker, the warning says so
(``Choice.speaker_risk``).

Echo: the softphone has no echo canceller; it is headset-only (docs/softphone.md): with
a headset the caller's voice never reaches the microphone. ``speaker_risk`` marks the
cases where it could (built-in speakers); the agent is told to plug in a headset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .audio import SAMPLE_BYTES, LevelMeter, RingBuffer

SPEAKER_WORDS = re.compile(r"speaker|built-?in|internal|analog stereo", re.IGNORECASE)


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    inputs: int
    outputs: int
    default_rate_hz: float


@dataclass(frozen=True)
class Choice:
    device: Device | None
    warning: str = ""  # for the window, in plain words
    speaker_risk: bool = False  # might be the laptop's speaker: the caller may hear an echo


def list_devices(sd: Any = None) -> list[Device]:
    """PortAudio's devices now (``sd``: the sounddevice module, for tests to pass a fake)."""
    sd = sd or _sounddevice()
    return [Device(i, str(d["name"]), int(d["max_input_channels"]),
                   int(d["max_output_channels"]), float(d["default_samplerate"]))
            for i, d in enumerate(sd.query_devices())]


def choose(devices: Sequence[Device], wanted: str, kind: str,
           default_index: int | None = None) -> Choice:
    """The ``kind`` ("input" or "output") device named ``wanted`` (the agent's choice),
    else the default with a warning saying what is missing."""
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    if not usable:
        return Choice(None, f"no {kind} device at all: plug in a headset", True)
    found = next((d for d in usable if d.name == wanted), None)
    if found is not None:
        return Choice(found, "", bool(SPEAKER_WORDS.search(found.name)) and kind == "output")
    fallback = next((d for d in usable if d.index == default_index), usable[0])
    risk = kind == "output" and bool(SPEAKER_WORDS.search(fallback.name))
    if wanted:
        warning = f"the {kind} device {wanted!r} is missing: using {fallback.name!r}"
    else:
        warning = f"no {kind} device chosen: using {fallback.name!r}"
    if risk:
        warning += " (this may be the computer's own speaker: plug in a headset)"
    return Choice(fallback, warning, risk)


class HotplugWatch:
    """Calls ``on_change(devices)`` when the set of devices changes; ``poll()`` from a timer
    (PortAudio has no hot-plug callback; a fresh list needs its re-initialisation)."""

    def __init__(self, on_change: Callable[[list[Device]], None],
                 lister: Callable[[], list[Device]]) -> None:
        self._on_change, self._lister = on_change, lister
        self._seen: tuple[str, ...] | None = None

    def poll(self) -> bool:
        devices = self._lister()
        names = tuple(sorted(d.name for d in devices))
        if names == self._seen:
            return False
        first = self._seen is None
        self._seen = names
        if not first:
            self._on_change(devices)
        return not first


def rescan(sd: Any = None) -> list[Device]:
    """The device list after re-initialising PortAudio (so that new devices show)."""
    sd = sd or _sounddevice()
    sd._terminate()
    sd._initialize()
    return list_devices(sd)


class DeviceAudio:
    """Microphone into ``to_call`` and ``from_call`` to the speaker, at the call's rate
    (PortAudio converts), ``block_ms`` per callback; levels for the meters. Two streams, so
    that a microphone that fails does not stall the speaker (``microphone=False``: none)."""

    def __init__(self, input_device: int | None, output_device: int | None,
                 clock_rate_hz: int = 8000, buffer_ms: int = 120, block_ms: int = 20,
                 sd: Any = None, microphone: bool = True) -> None:
        self._sd = sd or _sounddevice()
        self.to_call = RingBuffer(buffer_ms, clock_rate_hz)  # the agent's voice
        self.from_call = RingBuffer(buffer_ms, clock_rate_hz, prefill_ms=block_ms * 2)
        self.mic_level, self.speaker_level = LevelMeter(), LevelMeter()
        self._common = {"samplerate": clock_rate_hz,
                        "blocksize": clock_rate_hz * block_ms // 1000,
                        "channels": 1, "dtype": "int16"}
        self._microphone = microphone
        self.streams: list[Any] = []
        self.open(input_device, output_device)

    def open(self, input_device: int | None, output_device: int | None) -> None:
        self.streams = [self._sd.RawOutputStream(device=output_device, callback=self._play,
                                                 **self._common)]
        if self._microphone:
            self.streams.append(self._sd.RawInputStream(device=input_device,
                                                        callback=self._capture,
                                                        **self._common))

    def _play(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        outdata[:] = self.speaker_level.feed(self.from_call.read(frames * SAMPLE_BYTES))

    def _capture(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        self.to_call.write(self.mic_level.feed(bytes(indata)))

    def start(self) -> None:
        for stream in self.streams:
            stream.start()

    def close(self) -> None:
        for stream in self.streams:
            stream.stop()
            stream.close()


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # no libportaudio2
        raise RuntimeError(f"no sound devices: PortAudio is missing ({exc})") from exc
    return sounddevice
