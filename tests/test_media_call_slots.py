"""A call slot that PJSUA frees and gives to the next INVITE in the same pump turn.

PJSUA has a handful of call slots (four in the wheel). When a caller's BYE and the next
caller's INVITE arrive together, PJSIP ends the first call and gives its slot to the second
within one ``libHandleEvents``. The first call's pjsua2 ``Call`` object must be gone by then:
its destructor clears the slot's user data and hangs up whatever call is active in it, so a
``Call`` deleted a turn later answered the *new* caller 603 (seen at 500 calls in the capacity
benchmark as 603 Decline and "INVITE session already terminated").
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from media import LegHungUp
from tests import sipp
from tests.phone_harness import running_phone
from tests.raw_sip import RawUac

ROUNDS = 5


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="the SIP tests run with sip-tester installed")
def test_a_slot_freed_and_taken_in_one_turn_leaves_the_new_call_alone() -> None:
    finals: list[tuple[int, int]] = []  # (BYE of the previous call, INVITE of the next)
    errors: list[BaseException] = []
    answered = threading.Semaphore(0)  # the async side answered a leg

    async def scenario() -> list[LegHungUp]:
        async with running_phone(max_calls=1) as h:
            uac = RawUac(h.target)

            def client() -> None:
                try:
                    dialog, invite = uac.invite(rtp_port=40000)
                    uac.send(invite)
                    assert uac.final_response(dialog, "INVITE").status == 200
                    uac.send(uac.ack(dialog))
                    for n in range(ROUNDS):
                        answered.acquire(timeout=10)
                        time.sleep(0.2)
                        nxt, invite = uac.invite(rtp_port=40002 + 2 * n)
                        uac.send(uac.bye(dialog), invite)  # back to back: one pump turn
                        bye = uac.final_response(dialog, "BYE").status
                        inv = uac.final_response(nxt, "INVITE").status
                        finals.append((bye, inv))
                        if inv != 200:
                            return
                        uac.send(uac.ack(nxt))
                        dialog = nxt
                    answered.acquire(timeout=10)
                    uac.send(uac.bye(dialog))
                    uac.final_response(dialog, "BYE")
                except BaseException as exc:  # reported by the test below
                    errors.append(exc)

            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            ends: list[LegHungUp] = []
            try:
                for _ in range(ROUNDS + 1):
                    probe = await h.next_leg(timeout_s=10)
                    await probe.leg.answer(200)
                    answered.release()
                    ends.append(await probe.wait_for(LegHungUp, timeout_s=10))
            finally:
                await asyncio.to_thread(thread.join, 20)
                uac.close()
            return ends

    try:
        ends = asyncio.run(scenario())
    finally:
        assert not errors, (errors, finals)
    assert finals == [(200, 200)] * ROUNDS
    # Every call was ended by its caller's BYE, none by the phone.
    assert [(e.side.value, e.status_code) for e in ends] == [("remote", 200)] * (ROUNDS + 1)
