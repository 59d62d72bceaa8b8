"""Music on hold: a looping file player connected to one leg (pump thread).

A leg waiting in a queue, or put on hold by the agent, hears a WAV file played over and
over by PJMEDIA's file player (no Python per frame). It is independent of the prompt
player: a prompt (an announcement of the caller's position) can play over it. A stopped
player is retired like a prompt's (:class:`media.players.RetiredPlayers`).
"""

from __future__ import annotations

from pathlib import Path

import pjsua2 as pj

from .players import Player, RetiredPlayers

_LOOP = 0  # pjmedia_file_player option: 0 loops; PJMEDIA_FILE_NO_LOOP plays once


class MusicOnHold:
    """One looping player and the leg audio it plays to."""

    def __init__(self, leg_id: int, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"music on hold: no such file {path}")
        self.path = path
        self._player = Player(None, leg_id, 0)  # never reports an end
        self._player.createPlayer(str(path), _LOOP)

    def connect(self, audio: pj.AudioMedia) -> None:
        self._player.startTransmit(audio)

    def retire(self, audio: pj.AudioMedia | None, retired: RetiredPlayers) -> None:
        """Disconnect (unless the call's port is already gone) and hand the player over
        to be destroyed once PJMEDIA can no longer call it back."""
        if audio is not None:
            try:
                self._player.stopTransmit(audio)
            except pj.Error:
                pass
        retired.add(self._player)
