"""The harness's process pool for load: a warm parent forks callers of 4 calls each.

The parent (``ivr-harness load``) imports pjsua2 and loads the prompt fingerprints and the
scenario once, then forks every caller *before* it starts a thread or an event loop (forking
a threaded process is unsafe; the same rule as ``ivr/zygote.py``). A caller shares those
pages, starts its own :class:`~media.phone.Phone` on its own SIP and RTP ports, and obeys
one-line commands on a socketpair:

    parent -> caller   ``call\\n``   place one call of the scenario (at most
                                     :data:`CALLS_PER_PROCESS` at once)
                       ``stop\\n``   finish the calls up, then exit
    caller -> parent   a JSON line per finished call (:meth:`CallResult.as_dict` plus
                       ``started_at``, the wall-clock start, for the report's time axis)
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from media.leg import CallLeg
from media.phone import PhoneConfig

if TYPE_CHECKING:
    from .prompt_index import PromptIndex
    from .records import CallRecords
    from .scenario import Scenario

ChildBody = Callable[[socket.socket, int, int], int]

CALLS_PER_PROCESS = 4


def harness_phone_config(sip_port: int, rtp_port: int, calls: int = CALLS_PER_PROCESS
                         ) -> PhoneConfig:
    """A caller's phone: UDP on loopback, no taps of its own (the ear takes the tap slot),
    no RTP timeout (an IVR may stay silent), session timer only if the far end asks.
    PJSUA gets four times ``calls`` slots: a call we hung up keeps its slot for a moment
    after its end was reported, and the next call must not find them all taken
    (PJ_ETOOMANY; seen in load runs with twice)."""
    return PhoneConfig(bind_address="127.0.0.1", sip_port=sip_port, transports=("udp",),
                       rtp_port=rtp_port, rtp_port_range=16 * calls, max_calls=4 * calls,
                       inband_dtmf="never", user_agent="ivr-harness", local_user="harness",
                       rtp_timeout_s=0, session_expires_s=0, srtp="off",
                       codecs=("PCMU/8000", "PCMA/8000"))


def refuse_incoming(leg: CallLeg) -> None:
    """A harness phone only calls out: an INVITE to it is declined (603)."""
    asyncio.ensure_future(leg.hangup(603))


@dataclass
class Caller:
    """The parent's handle on one forked caller process."""

    pid: int
    sock: socket.socket
    active: int = 0


def fork_callers(count: int, sip_port: int, rtp_port: int, run_child: ChildBody
                 ) -> list[Caller]:
    """Fork ``count`` callers; caller ``i`` gets SIP port ``sip_port + i`` and RTP ports
    from ``rtp_port + 64 * i``. ``run_child(sock, sip_port, rtp_port)`` is the child's body."""
    callers: list[Caller] = []
    for i in range(count):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            parent_end.close()
            for c in callers:
                c.sock.close()
            code = 1
            try:
                code = run_child(child_end, sip_port + i, rtp_port + 64 * i)
            finally:
                sys.stdout.flush()
                os._exit(code)
        child_end.close()
        callers.append(Caller(pid, parent_end))
    return callers


def caller_main(scenario: Scenario, index: PromptIndex, records: CallRecords | None
                ) -> ChildBody:
    """The body of a forked caller, bound to what the warm parent loaded (the call's modules
    too: imported here, in the parent, a caller does not import them again, some 0.2 s of
    CPU each where Python writes no bytecode cache)."""
    from . import call  # noqa: F401

    def run(sock: socket.socket, sip_port: int, rtp_port: int) -> int:
        return asyncio.run(_serve(sock, sip_port, rtp_port, scenario, index, records))

    return run


async def _serve(sock: socket.socket, sip_port: int, rtp_port: int, scenario: Scenario,
                 index: PromptIndex, records: CallRecords | None) -> int:
    from media.phone import Phone

    from .call import run_call

    phone = Phone(harness_phone_config(sip_port, rtp_port), refuse_incoming)
    await phone.start()
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    tasks: set[asyncio.Task[None]] = set()
    with tempfile.TemporaryDirectory(prefix="ivr-harness-") as tmp:

        async def one() -> None:
            started = time.time()
            try:
                r = await run_call(phone, scenario, index, Path(tmp), records)
                d = r.as_dict()
            except Exception as exc:  # a harness bug: reported as this call's failure
                d = {"ok": False, "failed_step": "harness", "sip_call_id": "",
                     "failure": f"harness error: {type(exc).__name__}: {exc}", "steps": []}
            d["started_at"] = started
            writer.write((json.dumps(d) + "\n").encode())
            await writer.drain()

        try:
            while True:
                line = await reader.readline()
                if not line or line.strip() == b"stop":
                    break
                if line.strip() == b"call":
                    t = asyncio.ensure_future(one())
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await phone.stop()
            writer.close()
    return 0
