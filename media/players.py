"""PJMEDIA file players (prompts, playlists, music on hold) and their safe retirement.

Pump thread only, except ``onEof2`` (PJMEDIA's event thread), which only posts an event.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pjsua2 as pj

from .errors import PjsipError
from .events import PlaybackFinished

# A stopped player is destroyed this long after it was disconnected (see RetiredPlayers),
# sooner (but never before PLAYER_MIN_HOLD_S) when more than PLAYER_MAX_HELD wait:
# PJSUA has room for 32 players per process (PJSUA_MAX_PLAYERS).
PLAYER_HOLD_S = 0.5
PLAYER_MIN_HOLD_S = 0.1
PLAYER_MAX_HELD = 20

class Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    """A prompt or playlist; its EOF callback comes on PJMEDIA's event thread.

    Never dropped while connected: see :class:`RetiredPlayers`.
    """

    def __init__(self, post: Callable[[PlaybackFinished], None] | None, leg_id: int,
                 playback_id: int) -> None:
        super().__init__()
        self._post = post
        self.leg_id = leg_id
        self.playback_id = playback_id
        # A looping player (music on hold) has no end to report: it starts finished.
        self.finished = post is None

    def onEof2(self) -> None:  # noqa: N802
        if not self.finished and self._post is not None:
            self.finished = True
            self._post(PlaybackFinished(self.leg_id, self.playback_id))


class PlayersBusy(PjsipError):
    """No PJSUA player slot is free for now: stopped players still hold them."""


class RetiredPlayers:
    """Stopped players, kept whole until no EOF callback can still reach them.

    The player's WAV port posts its end-of-file event from the bridge tick, and PJMEDIA's
    event thread delivers it later, with a pointer to the C++ player. In pjsua2 2.15 the
    player's destructor does not cancel that subscription, and the bridge applies a
    disconnection or a port removal only on its next tick: a player dropped right after it
    was stopped (or its call ended) can reach its end in that tick, and the event then runs
    ``onEof2`` on freed memory (seen as AttributeErrors on unrelated objects, then workers
    killed by SIGSEGV, under load). PJSIP fixed it upstream after 2.15.1 (#5045).

    So a stopped player waits here, disconnected, for ``hold_s`` (25 bridge ticks; the
    event thread delivers within microseconds unless the machine is starved), and is then
    destroyed on the pump thread with its Python object whole, like a tap port. PJSUA has
    room for 32 players a process, so past ``max_held`` waiting the oldest go sooner, never
    before ``min_hold_s`` (5 ticks).
    """

    def __init__(self, hold_s: float = PLAYER_HOLD_S, min_hold_s: float = PLAYER_MIN_HOLD_S,
                 max_held: int = PLAYER_MAX_HELD,
                 destroy: Callable[[Player], None] | None = None) -> None:
        self.hold_s = hold_s
        self.min_hold_s = min_hold_s
        self.max_held = max_held
        self._destroy = destroy or destroy_player
        self._players: deque[tuple[float, Player]] = deque()  # (retired at, player)

    def __len__(self) -> int:
        return len(self._players)

    def add(self, player: Player, now: float | None = None) -> None:
        player.finished = True
        self._players.append((time.monotonic() if now is None else now, player))

    def reap(self, now: float | None = None, *, room: int = 0) -> None:
        """Destroy the players whose hold has passed (pump thread); with ``room``, also the
        oldest past their minimum hold until at most ``max_held - room`` wait."""
        now = time.monotonic() if now is None else now
        limit = self.max_held - room
        while self._players:
            retired_at, player = self._players[0]
            held = now - retired_at
            if held < self.hold_s and not (len(self._players) > limit
                                           and held >= self.min_hold_s):
                break
            self._players.popleft()
            self._destroy(player)

    def destroy_all(self) -> None:
        """At library shutdown: every player goes before the library does."""
        while self._players:
            self._destroy(self._players.popleft()[1])


def destroy_player(player: Player) -> None:
    """The C++ player (and its WAV port) go now, while the Python object is whole."""
    pj.AudioMediaPlayer.__swig_destroy__(player)
