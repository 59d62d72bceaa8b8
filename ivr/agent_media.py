"""The phone's side of the ACD part of a call (``ivr.queue_call.AcdMedia``): agent legs
placed on the worker's one PJSIP endpoint, each call's own bridge, two-channel recordings.

An agent leg needs a free PJSUA call slot: with none free (``max_legs`` legs up), placing
one fails at once with a MediaError, which the call reports as ``OfferFailed(error)``.
"""

from __future__ import annotations

from pathlib import Path

from media import CallLeg, MediaError
from media.bridge import Bridge
from media.phone import Phone
from media.stereo import TwoChannelRecording


class NoFreeLegError(MediaError):
    """Every PJSUA call slot of the worker is taken."""


class PhoneMedia:
    def __init__(self, phone: Phone, max_legs: int) -> None:
        self.phone = phone
        self.max_legs = max_legs
        self._bridges: dict[int, Bridge] = {}  # the caller's leg id -> its call's bridge

    async def place_call(self, uri: str, headers: dict[str, str]) -> CallLeg:
        if self.phone.active_legs >= self.max_legs:
            raise NoFreeLegError(f"no free call slot ({self.max_legs} legs up)")
        return await self.phone.place_call(uri, headers)

    async def bridge(self, caller: CallLeg, agent: CallLeg) -> None:
        bridge = self._bridges.setdefault(caller.leg_id, Bridge(self.phone))
        await bridge.connect(caller, agent)

    async def connect(self, caller: CallLeg, a: CallLeg, b: CallLeg, level_ab: float,
                      level_ba: float) -> None:
        """In ``caller``'s call bridge: ``b`` hears ``a`` at ``level_ab``, ``a`` hears
        ``b`` at ``level_ba`` (0: not at all). A supervisor's directions."""
        bridge = self._bridges.setdefault(caller.leg_id, Bridge(self.phone))
        if a is b:
            raise ValueError("a leg cannot be connected to itself")
        await bridge.connect(a, b, level_ab, level_ba)

    async def disconnect(self, caller: CallLeg, leg: CallLeg) -> None:
        """Take ``leg`` out of ``caller``'s call bridge (the others stay connected)."""
        bridge = self._bridges.get(caller.leg_id)
        if bridge is not None:
            await bridge.remove(leg)

    async def unbridge(self, caller: CallLeg, agent: CallLeg) -> None:
        bridge = self._bridges.get(caller.leg_id)
        if bridge is not None:
            await bridge.remove(agent)
            if len(bridge.legs) <= 1:
                self._bridges.pop(caller.leg_id, None)

    async def start_recording(self, left: CallLeg, right: CallLeg,
                              path: Path) -> TwoChannelRecording:
        rec = TwoChannelRecording(self.phone, left, right, path)
        await rec.start()
        return rec
