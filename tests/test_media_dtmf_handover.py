"""An RFC 4733 key press reaches the flow as it arrives, not on the pump thread's next turn.

PJMEDIA decodes RFC 4733 events on its media thread. pjsua2 used to queue the digit for the
pump (``mainThreadOnly``), which only looks at that queue when its ``select()`` returns:
up to ``media.pump_timeout_ms`` (100 ms) later, the largest part of key -> next prompt
(docs/harness.md, "Key to prompt"). The digit now goes from the media thread straight to the
loop. Shown by order, not by time: with the pump thread held busy by a command, the digit
still reaches the leg, before the pump is let go.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from media import DtmfMethod, DtmfReceived
from tests import sipp
from tests.phone_harness import running_phone, tone, write_wav
from tests.rtp_peer import RtpPeer
from tests.test_media_record_transfer import finished, needs_sipp, run_sipp

pytestmark = [pytest.mark.sip, needs_sipp]


def test_an_rfc4733_digit_reaches_the_leg_while_the_pump_thread_is_busy(tmp_path: Path
                                                                         ) -> None:
    peer = RtpPeer(ssrc=0x77777777)
    caller = sipp.Caller("digit_while_pump_busy", media_port=peer.port).pause(
        1500).caller_hangs_up()

    async def scenario() -> None:
        # the longest pump turn allowed: a digit waiting for the pump would wait this long
        async with running_phone(pump_timeout_ms=1000) as h:
            job = run_sipp(caller, h.target, tmp_path)
            probe, _ = await h.answered_leg()
            # a prompt playing, as when a caller presses a key in a menu (and RTP to find)
            await probe.leg.play([write_wav(tmp_path / "prompt.wav", tone(440, 1.5))])
            ivr_rtp = await asyncio.to_thread(peer.first_source)
            entered, release = threading.Event(), threading.Event()

            def hold_the_pump() -> bool:
                entered.set()
                return release.wait(timeout=10.0)

            held = h.phone.submit(hold_the_pump)
            assert await asyncio.to_thread(entered.wait, 5.0), "the pump never ran the hold"
            await asyncio.to_thread(peer.send_digit, ivr_rtp, "5")
            try:
                event = await probe.wait_for(DtmfReceived, timeout_s=5.0)
                busy = not release.is_set()
            finally:
                release.set()
            assert await held, "the pump was let go by its own timeout, not by the test"
            assert (event.digit, event.method) == ("5", DtmfMethod.RFC4733)
            assert busy  # it came while the pump thread was still held
            await finished(job)

    try:
        asyncio.run(scenario())
    finally:
        peer.close()
