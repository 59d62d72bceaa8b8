"""Stopped prompt players live until PJMEDIA can no longer call them back.

pjsua2 2.15's player destructor leaves the WAV port's end-of-file subscription in place, and
the bridge applies a disconnection only on its next tick: a player destroyed right after it
was stopped could get its EOF callback on freed memory (a worker killed by SIGSEGV, under
load). `media.phone._RetiredPlayers` holds stopped players a while; these tests check the
hold's rules and that a real Phone survives a thousand stops racing the prompt's end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from media import LegGoneError, PlaybackFinished
from media.phone import _RetiredPlayers
from tests import sipp
from tests.phone_harness import running_phone, silence, tone, write_wav

ROOT = Path(__file__).resolve().parent.parent
needs_sipp = pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")


@dataclass(eq=False)
class FakePlayer:
    name: str
    finished: bool = False


def held(hold_s: float = 0.5, min_hold_s: float = 0.1,
         max_held: int = 3) -> tuple[_RetiredPlayers, list[str]]:
    destroyed: list[str] = []
    retired = _RetiredPlayers(hold_s, min_hold_s, max_held,
                              destroy=lambda p: destroyed.append(p.name))
    return retired, destroyed


def test_a_stopped_player_is_destroyed_only_after_its_hold() -> None:
    retired, destroyed = held()
    player = FakePlayer("a")
    retired.add(player, now=10.0)  # type: ignore[arg-type]
    assert player.finished  # its EOF, if it still comes, is ignored
    retired.reap(now=10.49)
    assert destroyed == [] and len(retired) == 1
    retired.reap(now=10.5)
    assert destroyed == ["a"] and len(retired) == 0


def test_players_go_oldest_first() -> None:
    retired, destroyed = held()
    for i, name in enumerate("abc"):
        retired.add(FakePlayer(name), now=10.0 + i * 0.2)  # type: ignore[arg-type]
    retired.reap(now=10.75)
    assert destroyed == ["a", "b"]


def test_past_the_limit_the_oldest_go_early_but_not_before_the_minimum_hold() -> None:
    retired, destroyed = held(max_held=3)
    for i, name in enumerate("abcde"):
        retired.add(FakePlayer(name), now=10.0 + i * 0.05)  # type: ignore[arg-type]
    retired.reap(now=10.12)  # only "a" (0.12 s) is past the 0.1 s minimum
    assert destroyed == ["a"]
    retired.reap(now=10.3)  # four wait, limit three: "b" goes; "c".. stay within the limit
    assert destroyed == ["a", "b"]
    assert len(retired) == 3


def test_making_room_for_a_new_player_takes_every_one_past_the_minimum() -> None:
    retired, destroyed = held(max_held=20)
    for i, name in enumerate("abcd"):
        retired.add(FakePlayer(name), now=10.0 + i * 0.05)  # type: ignore[arg-type]
    retired.reap(now=10.21, room=20)
    assert destroyed == ["a", "b", "c"]  # "d" was stopped 60 ms ago: still held


def test_shutdown_destroys_every_held_player() -> None:
    retired, destroyed = held()
    for name in "ab":
        retired.add(FakePlayer(name), now=10.0)  # type: ignore[arg-type]
    retired.destroy_all()
    assert destroyed == ["a", "b"] and len(retired) == 0


@pytest.mark.sip
@needs_sipp
def test_a_thousand_stops_racing_the_prompts_end_do_not_crash_the_phone(
        tmp_path: Path) -> None:
    # Before the hold, this process died of SIGSEGV within 200-600 rounds (three runs).
    rounds = 1000
    proc = subprocess.run(
        [sys.executable, "-m", "tests.player_churn", str(tmp_path), str(rounds), "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{output[-3000:]}"
    assert f"churned {rounds}" in proc.stdout
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.sip
@needs_sipp
def test_prompts_started_and_stopped_back_to_back_find_a_player_slot(tmp_path: Path) -> None:
    # PJSUA has 32 player slots a process; stopped players are held, so a flow that stops
    # prompts as fast as it can must still get a player each time.
    prompt = write_wav(tmp_path / "long.wav", tone(700, 2.0))
    last = write_wav(tmp_path / "short.wav", silence(0.1))
    caller = sipp.Caller("held_fast").pause(20000).caller_hangs_up()

    async def scenario() -> None:
        async with running_phone() as h:
            job = asyncio.ensure_future(
                asyncio.to_thread(sipp.run, caller, h.target, tmp_path, timeout_s=40))
            probe, _ = await h.answered_leg()
            for _ in range(100):
                await probe.leg.play([prompt])
                await probe.leg.stop_playback()
            playback = await probe.leg.play([last])
            finished = await probe.wait_for(PlaybackFinished)
            assert finished.playback_id == playback
            await h.hang_up(probe)
            with pytest.raises(LegGoneError):
                await probe.leg.play([last])
            job.cancel()

    asyncio.run(scenario())
