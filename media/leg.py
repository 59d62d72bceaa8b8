"""An async call leg: what the flow interpreter and the ACD see of a SIP call.

Every method queues a command for the pump thread (see ``media/phone.py``) and awaits its
result; events arrive in order through :meth:`CallLeg.next_event`.

States::

    RINGING --answer()--> ANSWERED --MediaReady--> (media up)
       |                     |
       +-------- LegHungUp (either side) --------> ENDED
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LegGoneError
from .events import DtmfMethod, LegEvent, LegHungUp, MediaReady

if TYPE_CHECKING:
    from .inband import InbandTap
    from .phone import Phone


class CallLeg:
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

    def __repr__(self) -> str:
        return f"<CallLeg {self.leg_id} {self.remote_uri} {self.sip_call_id}>"

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
        await self._phone.submit(lambda: self._phone._play(handle, paths, playback_id))
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

    async def send_dtmf(self, digits: str, method: DtmfMethod = DtmfMethod.RFC4733) -> None:
        self._check()
        handle = self._handle
        await self._phone.submit(lambda: self._phone._send_dtmf(handle, digits, method))
