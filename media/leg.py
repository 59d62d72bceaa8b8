"""An async call leg: what the flow interpreter and the ACD see of a SIP call.

Every method queues a command for the pump thread (see ``media/phone.py``) and awaits its
result; events arrive in order through :meth:`CallLeg.next_event`.

States of an incoming leg::

    RINGING --answer()--> ANSWERED --MediaReady--> (media up)
       |                     |
       +-------- LegHungUp (either side) --------> ENDED

and of an outbound one (:meth:`media.phone.Phone.place_call`)::

    CALLING --LegRinging--> RINGING --LegAnswered--> ANSWERED --MediaReady--> (media up)
       |                       |                        |
       +-- LegFailed (486, 487 after cancel(), 408...) -+-- LegHungUp --> ENDED
                                                           (follows LegFailed too)

Either kind reports the far end's hold and resume (:class:`~media.events.LegHeld`,
:class:`~media.events.LegResumed`), can play music on hold (``start_moh``/``stop_moh``)
and can be bridged to other legs (:class:`media.bridge.Bridge`).

Once media is up the leg can record the caller (``start_recording``/``stop_recording``, one
recording at a time), measure the caller's voice level (``heard_voice``,
``trailing_silence_s``: while recording, or after ``watch_level(True)``) and be transferred
blind (``transfer``; progress comes as :class:`~media.events.TransferResult` events).
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import LegBusyError, LegGoneError, MediaError
from .events import DtmfMethod, LegEvent, LegHungUp, MediaReady

if TYPE_CHECKING:
    from .inband import FrameSink, InbandTap
    from .phone import Phone


# How long stop_recording waits for PJMEDIA to close the WAV (normally one 20 ms clock tick).
RECORDING_CLOSE_TIMEOUT_S = 2.0


def wav_duration_s(path: Path) -> float:
    """Duration of a PCM WAV file, from its header."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


class CallLeg(Protocol):
    """What a call's session sees of one leg: the caller's, or an agent's placed with
    :meth:`media.phone.Phone.place_call`. :class:`SipCallLeg` is the real one; a session's
    tests can give it a fake with the same surface."""

    leg_id: int
    sip_call_id: str
    remote_uri: str
    local_uri: str
    media: MediaReady | None  # set once the audio flows
    ended: LegHungUp | None  # set once the leg is over
    heard_voice: bool
    trailing_silence_s: float

    @property
    def current_playback_id(self) -> int: ...

    @property
    def recording(self) -> Path | None: ...

    async def next_event(self) -> LegEvent: ...

    def pending_events(self) -> int: ...

    async def answer(self, status_code: int = 200) -> None: ...

    async def play(self, files: Sequence[Path]) -> int: ...

    async def stop_playback(self) -> None: ...

    async def hangup(self, status_code: int | None = None) -> None: ...

    async def cancel(self) -> None: ...

    async def send_dtmf(self, digits: str, method: DtmfMethod = DtmfMethod.RFC4733) -> None: ...

    async def start_recording(self, path: Path) -> None: ...

    async def stop_recording(self) -> float: ...

    async def watch_level(self, on: bool = True) -> None: ...

    async def listen(self, sink: FrameSink | None) -> None: ...

    async def transfer(self, uri: str) -> None: ...

    async def start_moh(self, path: Path) -> None: ...

    async def stop_moh(self) -> None: ...


class SipCallLeg:
    """A :class:`CallLeg` that is a SIP call of this process's :class:`~media.phone.Phone`."""

    def __init__(
        self, phone: Phone, leg_id: int, *, sip_call_id: str, remote_uri: str, local_uri: str
    ) -> None:
        self.leg_id = leg_id
        self.sip_call_id = sip_call_id
        self.remote_uri = remote_uri
        self.local_uri = local_uri
        self.media: MediaReady | None = None
        self.ended: LegHungUp | None = None
        self._phone = phone
        self._handle: Any = None  # the pump thread's state; opaque here, never touched
        self._inband: InbandTap | None = None
        self._events: asyncio.Queue[LegEvent] = asyncio.Queue()
        self._playback_id = 0
        self._recording: Path | None = None
        self._level_requested = False
        # The caller's voice level, kept by the phone's poller while it is watched (see
        # media.inband.LevelMeter for the threshold); frozen when watching stops.
        self.heard_voice = False
        self.trailing_silence_s = 0.0

    def __repr__(self) -> str:
        return f"<SipCallLeg {self.leg_id} {self.remote_uri} {self.sip_call_id}>"

    # events -------------------------------------------------------------------------

    def _deliver(self, event: LegEvent) -> None:
        if self.ended is not None:
            return  # nothing follows the end of a leg
        if isinstance(event, MediaReady):
            self.media = event
        elif isinstance(event, LegHungUp):
            self.ended = event
        self._events.put_nowait(event)

    async def next_event(self) -> LegEvent:
        return await self._events.get()

    def pending_events(self) -> int:
        return self._events.qsize()

    # commands -----------------------------------------------------------------------

    def _check(self) -> None:
        if self.ended is not None:
            raise LegGoneError(f"leg {self.leg_id} has ended ({self.ended.reason})")

    async def answer(self, status_code: int = 200) -> None:
        """Send a provisional (180/183) or final (200) answer."""
        self._check()
        handle = self._handle
        await self._phone.submit(lambda: self._phone._answer(handle, status_code))

    async def play(self, files: Sequence[Path]) -> int:
        """Start playing ``files`` back to back; returns the playback id that
        :class:`~media.events.PlaybackFinished` will carry. Replaces any playback running."""
        self._check()
        if not files:
            raise ValueError("play() needs at least one file")
        playback_id = self._phone.new_playback_id()
        self._playback_id = playback_id
        handle = self._handle
        paths = list(files)
        await self._phone.play(handle, paths, playback_id)
        return playback_id

    @property
    def current_playback_id(self) -> int:
        return self._playback_id

    async def stop_playback(self) -> None:
        if self.ended is not None:
            return
        self._playback_id = 0
        handle = self._handle
        await self._phone.submit(lambda: self._phone._stop_playback(handle))

    async def hangup(self, status_code: int | None = None) -> None:
        """End the leg: BYE once answered, else a final response (``status_code``, default
        603). Does nothing on a leg already ended."""
        if self.ended is not None:
            return
        handle = self._handle
        await self._phone.submit(lambda: self._phone._hangup(handle, status_code or 603))

    async def cancel(self) -> None:
        """End an outbound leg before it is answered (CANCEL; the far end answers 487), or
        hang it up if it was answered meanwhile. The ring timeout is the caller's."""
        await self.hangup()

    async def start_moh(self, path: Path) -> None:
        """Play ``path`` (a WAV at the bridge's clock rate) to the far end, over and over,
        until :meth:`stop_moh`; independent of prompts, which can play over it."""
        self._check()
        handle = self._handle
        await self._phone.submit(lambda: self._phone._start_moh(handle, path))

    async def stop_moh(self) -> None:
        if self.ended is not None:
            return
        handle = self._handle
        await self._phone.submit(lambda: self._phone._stop_moh(handle))

    async def send_dtmf(self, digits: str, method: DtmfMethod = DtmfMethod.RFC4733) -> None:
        self._check()
        handle = self._handle
        await self._phone.submit(lambda: self._phone._send_dtmf(handle, digits, method))

    # recording, voice level, transfer ------------------------------------------------

    @property
    def recording(self) -> Path | None:
        """The WAV being recorded, if any."""
        return self._recording

    async def start_recording(self, path: Path) -> None:
        """Record what the caller says (not the prompts) to ``path``, a WAV file: mono
        16-bit PCM at the bridge's clock rate. Also starts a voice-level measurement
        (``heard_voice``, ``trailing_silence_s``). One recording at a time per leg."""
        self._check()
        if path.suffix.lower() != ".wav":
            raise ValueError(f"a recording is written as WAV: {path} does not end in .wav")
        if self._recording is not None:
            raise LegBusyError(f"leg {self.leg_id} is already recording to {self._recording}")
        self._recording = path
        handle = self._handle
        try:
            await self._phone.submit(lambda: self._phone._start_recording(handle, path))
        except BaseException:
            self._recording = None
            raise
        try:
            await self._phone._watch_level(self)
        except LegGoneError:
            pass  # the call ended at once; stop_recording still gives what was written

    async def stop_recording(self) -> float:
        """Stop the recording and return its duration in seconds, read from the WAV once
        PJMEDIA has closed it. On a leg that ended mid-recording (the recorder was released
        then) it returns the duration of what was written."""
        path = self._recording
        if path is None:
            raise MediaError(f"leg {self.leg_id} is not recording")
        self._recording = None
        if self.ended is None:
            handle = self._handle
            try:
                await self._phone.submit(lambda: self._phone._stop_recording(handle))
            finally:
                if not self._level_requested:
                    await self._phone._unwatch_level(self)
        elif not self._level_requested:
            await self._phone._unwatch_level(self)
        await self._phone._wav_closed(path, RECORDING_CLOSE_TIMEOUT_S)
        return wav_duration_s(path)

    async def watch_level(self, on: bool = True) -> None:
        """Measure the caller's voice level (``heard_voice``, ``trailing_silence_s``) even
        without recording. ``watch_level(True)`` starts a new measurement; ``False`` stops
        it unless a recording still needs it."""
        if on:
            self._check()
            self._level_requested = True
            try:
                await self._phone._watch_level(self)
            except BaseException:
                self._level_requested = False
                raise
        else:
            self._level_requested = False
            if self._recording is None:
                await self._phone._unwatch_level(self)

    async def listen(self, sink: FrameSink | None) -> None:
        """Hand the caller's audio to ``sink`` (on the loop, in batches of 20 ms frames,
        never on the media thread) until ``listen(None)``: a speech menu listening."""
        if sink is None:
            await self._phone._unlisten(self)
        else:
            self._check()
            await self._phone._listen(self, sink)

    async def transfer(self, uri: str) -> None:
        """Blind transfer: send REFER with ``Refer-To: uri``. Returns once it is sent; the
        outcome arrives as :class:`~media.events.TransferResult` events. Hanging up after a
        successful transfer is left to the caller."""
        self._check()
        if not uri:
            raise ValueError("transfer() needs a target URI")
        handle = self._handle
        await self._phone.submit(lambda: self._phone._transfer(handle, uri))


def sip_leg(leg: CallLeg) -> SipCallLeg:
    """The SIP call behind ``leg``: bridging and recording work on real legs only."""
    if not isinstance(leg, SipCallLeg):
        raise TypeError(f"{leg!r} is not a SIP call of this phone")
    return leg
