"""Bridging legs in the worker's own PJMEDIA conference bridge.

Every leg's audio is a port of the bridge. A :class:`Bridge` connects legs one direction
at a time, each with its own level: A hears B (``B -> A``) and B hears A (``A -> B``) are
two connections. That is what a supervisor needs later: *listen* is ``agent -> sup`` and
``caller -> sup`` with ``sup -> *`` off, *whisper* adds ``sup -> agent``, *barge* adds
``sup -> caller``. The mixing is PJMEDIA's, in C on its clock thread: media never leaves
the worker and no Python runs per packet.

Levels are PJMEDIA's per-connection adjustment: 1.0 as received, 0.5 about -6 dB, 2.0
about +6 dB; 0 (or less) means no connection at all (silence that way).

The connections live on the pump thread with the legs (``_LegState.links``, sink ->
level); they are made again when a re-INVITE moves a leg's port, and dropped with a leg
that ends, leaving the others connected as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import pjsua2 as pj

from .errors import LegGoneError, MediaError
from .leg import sip_leg

if TYPE_CHECKING:
    from .leg import CallLeg
    from .phone import Phone

MAX_LEVEL = 4.0  # +12 dB; PJMEDIA clips beyond, and nobody needs louder


class _Port(Protocol):
    """What the links need of a leg's pump-side state (media.phone._LegState)."""

    audio: pj.AudioMedia | None
    disconnected: bool
    links: dict[Any, float]


def _transmit(src: _Port, dst: _Port, level: float) -> None:
    assert src.audio is not None and dst.audio is not None
    param = pj.AudioMediaTransmitParam()
    param.level = level
    src.audio.startTransmit2(dst.audio, param)


def set_link(src: _Port, dst: _Port, level: float) -> None:
    """Connect ``src``'s audio to ``dst`` at ``level`` (0: disconnect). Pump thread."""
    for port in (src, dst):
        if port.disconnected or port.audio is None:
            raise LegGoneError("a bridged leg has ended or has no audio yet")
    assert src.audio is not None and dst.audio is not None
    old = src.links.pop(dst, None)
    if old is not None:
        src.audio.stopTransmit(dst.audio)  # PJMEDIA cannot change a connection's level
    if level > 0:
        _transmit(src, dst, level)
        src.links[dst] = level


def reconnect(state: _Port, others: Iterable[_Port]) -> None:
    """``state``'s port changed (a re-INVITE): make its connections again, both ways."""
    if state.audio is None:
        return
    for dst, level in state.links.items():
        if not dst.disconnected and dst.audio is not None:
            _transmit(state, dst, level)
    for src in others:
        if src is not state and state in src.links and src.audio is not None:
            _transmit(src, state, src.links[state])


def drop(state: _Port, others: Iterable[_Port]) -> None:
    """``state`` has ended: forget its connections (its port left the bridge with them)."""
    state.links.clear()
    for src in others:
        src.links.pop(state, None)


def check_level(level: float) -> float:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"a bridge level is between 0 (off) and {MAX_LEVEL}, not {level}")
    return float(level)


class Bridge:
    """Legs of one call connected to each other in the worker's conference bridge.

    ``connect(a, b)`` makes both directions (level 1.0 unless told); ``set_level(src, dst,
    level)`` changes one direction (0: off); ``remove(leg)`` takes one leg out and leaves the
    others connected; ``close()`` takes all out. A leg that ends leaves by itself.
    """

    def __init__(self, phone: Phone) -> None:
        self._phone = phone
        self._levels: dict[tuple[int, int], float] = {}  # (src leg id, dst leg id) -> level
        self._legs: dict[int, CallLeg] = {}

    @property
    def legs(self) -> tuple[CallLeg, ...]:
        return tuple(self._legs.values())

    def level(self, src: CallLeg, dst: CallLeg) -> float:
        """The level of ``src -> dst`` (0: not connected)."""
        return self._levels.get((src.leg_id, dst.leg_id), 0.0)

    async def connect(self, a: CallLeg, b: CallLeg, level_ab: float = 1.0,
                      level_ba: float = 1.0) -> None:
        """``b`` hears ``a`` at ``level_ab``, ``a`` hears ``b`` at ``level_ba``."""
        if a is b:
            raise ValueError("a leg cannot be bridged to itself")
        level_ab, level_ba = check_level(level_ab), check_level(level_ba)
        self._join(a)
        self._join(b)
        await self._set(a, b, level_ab)
        await self._set(b, a, level_ba)

    async def set_level(self, src: CallLeg, dst: CallLeg, level: float) -> None:
        """Set what ``dst`` hears of ``src``: ``level`` (0: nothing)."""
        if src.leg_id not in self._legs or dst.leg_id not in self._legs:
            raise MediaError("set_level: both legs must be in the bridge (connect them first)")
        await self._set(src, dst, check_level(level))

    async def remove(self, leg: CallLeg) -> None:
        """Take ``leg`` out of the bridge, both directions; the other legs stay connected."""
        if self._legs.pop(leg.leg_id, None) is None:
            return
        for other in self._legs.values():
            for src, dst in ((leg, other), (other, leg)):
                if self._levels.pop((src.leg_id, dst.leg_id), None) is None:
                    continue
                if src.ended is None and dst.ended is None:
                    try:
                        await self._submit(src, dst, 0.0)
                    except LegGoneError:
                        pass  # it ended meanwhile: its connections went with it

    async def close(self) -> None:
        for leg in list(self._legs.values()):
            await self.remove(leg)

    def _join(self, leg: CallLeg) -> None:
        sip_leg(leg)._check()
        self._legs[leg.leg_id] = leg

    async def _set(self, src: CallLeg, dst: CallLeg, level: float) -> None:
        await self._submit(src, dst, level)
        if level > 0:
            self._levels[(src.leg_id, dst.leg_id)] = level
        else:
            self._levels.pop((src.leg_id, dst.leg_id), None)

    async def _submit(self, src: CallLeg, dst: CallLeg, level: float) -> None:
        s, d = sip_leg(src)._handle, sip_leg(dst)._handle
        phone = self._phone

        def run() -> None:
            set_link(s, d, level)
            phone._clock_priority.expect()

        await phone.submit(run)
