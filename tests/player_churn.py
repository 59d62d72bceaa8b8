"""Plays a one-frame prompt on a sipp caller's leg and stops it at random moments, many times.

Run as a child process by tests/test_media_player_lifetime.py: a player destroyed while
PJMEDIA can still deliver its end-of-file event makes the process die of SIGSEGV, which a
test in the same process could not report. Prints ``churned N`` when every round ran.

    python -m tests.player_churn WORKDIR ROUNDS SEED
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from tests import sipp
from tests.phone_harness import running_phone, tone, write_wav


async def churn(workdir: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    blip = write_wav(workdir / "blip.wav", tone(1000, 0.02))  # one 20 ms frame
    async with running_phone() as h:
        caller = sipp.Caller("held_churn").pause(300_000).caller_hangs_up()
        job = asyncio.ensure_future(
            asyncio.to_thread(sipp.run, caller, h.target, workdir, timeout_s=330))
        probe, _ = await h.answered_leg()
        for n in range(rounds):
            await probe.leg.play([blip])
            # Around the frame's end: the stop races the bridge tick that reaches EOF.
            await asyncio.sleep(rng.uniform(0.0, 0.045))
            await probe.leg.stop_playback()
            if n % 100 == 0:
                print(f"round {n}", flush=True)
        await h.hang_up(probe)
        job.cancel()
    print(f"churned {rounds}", flush=True)


if __name__ == "__main__":
    asyncio.run(churn(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
