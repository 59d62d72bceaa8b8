"""``softphone --headless``: the softphone without a window, for bots and tests.

Audio comes from a tone (``--tone-hz``) or a WAV file (``--play``) and what the agent hears
is kept for ``--record`` (written at exit, or by the ``save PATH`` command). Commands come
one a line on standard input; the session's state goes to standard output as one JSON
object a line whenever it changes (and ``{"error": ...}`` for a command refused):

    ready | not_ready REASON | logged_out | next STATE [REASON]
    answer | hangup | mute on|off | hold | resume | dtmf DIGITS | transfer TARGET
    wrapup CODE [NOTE...] | save PATH | quit

The password comes from the environment (``--password-env``, default
``SOFTPHONE_PASSWORD``), never from the command line (where ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import outbox as outbox_file
from .audio import RingBuffer, ToneSource, WavSink, WavSource
from .model import InvalidStateError
from .runner import Softphone, SoftphoneConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="http://127.0.0.1:8080", help="the agent API's URL")
    p.add_argument("--sip", default="127.0.0.1:5060", help="the SIP front (host:port)")
    p.add_argument("--sip-domain", default="127.0.0.1", help="the agents' SIP domain")
    p.add_argument("--agent", help="agent id")
    p.add_argument("--password-env", default="SOFTPHONE_PASSWORD",
                   help="the environment variable holding the password")
    p.add_argument("--sip-port", type=int, default=0, help="local SIP port (0: any)")
    p.add_argument("--rtp-port", type=int, default=0, help="first local RTP port (0: any)")
    p.add_argument("--tone-hz", type=float, default=0.0, help="send this tone as the voice")
    p.add_argument("--play", type=Path, help="send this WAV (16-bit mono 8 kHz), looped")
    p.add_argument("--record", type=Path, help="write what the agent heard here at exit")
    p.add_argument("--auto-answer", type=float, default=None, metavar="S",
                   help="answer by itself after S seconds of ringing")
    p.add_argument("--ready", action="store_true", help="go ready once signed in")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where wrap-ups waiting for the server are kept across restarts "
                        "(default: the user's state dir, ~/.local/state/"
                        "callcenter-softphone on Linux)")
    p.add_argument("--reconnect-max-s", type=float, default=30.0,
                   help="the longest wait between reconnects (back-off from 0.5 s)")


def snapshot(phone: Softphone) -> dict[str, Any]:
    s = phone.session
    offer = s.offer
    return {"link": s.link.value, "status": s.status.value, "reason": s.reason,
            "call": s.call.value, "muted": s.muted, "registered": phone.registered,
            "ringing": phone.ringing, "outbox": len(s.outbox),
            "next": s.next_state[0].value if s.next_state else None,
            "acw_call_id": s.acw_call_id,
            "offer": None if offer is None else {
                "call_id": offer.call_id, "queue": offer.queue, "caller": offer.caller,
                "wait_s": offer.wait_s, "data": offer.data},
            "script": phone.script, "notices": [n.text for n in phone.notices[-3:]],
            "figures": figures_of(s)}


def figures_of(s: Any) -> dict[str, Any]:
    """The figures panel's numbers; time per state as the server last gave it (it would
    change every line otherwise), or as counted here until the server answered."""
    at = s.server_figures[1] if s.server_figures else s.status_since or 0.0
    f = s.shift_figures(at)
    return {"calls_handled": f.calls_handled, "calls_last_hour": f.calls_last_hour,
            "aht_s": f.aht_s, "time_in_state_s": f.time_in_state_s,
            "survey_count": f.survey_count, "survey_mean": f.survey_mean,
            "from_server": f.from_server}


COMMANDS: dict[str, Callable[[list[str]], tuple[Any, ...]]] = {
    "ready": lambda a: ("go_ready",),
    "not_ready": lambda a: ("go_not_ready", a[0] if a else ""),
    "logged_out": lambda a: ("set_state", "logged_out"),
    "next": lambda a: ("choose_next_state", a[0], a[1] if len(a) > 1 else ""),
    "answer": lambda a: ("answer",),
    "hangup": lambda a: ("hang_up",),
    "mute": lambda a: ("set_mute", a[:1] == ["on"]),
    "hold": lambda a: ("hold",),
    "resume": lambda a: ("resume",),
    "dtmf": lambda a: ("send_dtmf", a[0]),
    "transfer": lambda a: ("transfer", a[0]),
    "wrapup": lambda a: ("submit_wrapup", a[0], " ".join(a[1:])),
}


async def run(args: argparse.Namespace) -> int:
    password = os.environ.get(args.password_env, "")
    if not args.agent or not password:
        print(f"softphone: give --agent and the password in ${args.password_env}",
              file=sys.stderr)
        return 2
    if args.play:
        source: Any = WavSource(args.play)
    elif args.tone_hz:
        source = ToneSource(args.tone_hz)
    else:
        source = RingBuffer(200).read  # silence
    sink = WavSink()
    loop = asyncio.get_running_loop()
    last: list[str] = [""]

    def changed() -> None:
        line = json.dumps(snapshot(phone), sort_keys=True)
        if line != last[0]:
            last[0] = line
            print(line, flush=True)

    phone = Softphone(SoftphoneConfig(args.server, args.sip, args.agent, password,
                                      sip_domain=args.sip_domain, sip_port=args.sip_port,
                                      rtp_port=args.rtp_port,
                                      auto_answer_s=args.auto_answer,
                                      reconnect_max_s=args.reconnect_max_s,
                                      outbox_path=outbox_file.outbox_path(
                                          args.agent, args.state_dir)),
                      source, sink, on_change=changed)
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        await phone.start()
    except outbox_file.OutboxError as exc:
        print(f"softphone: {exc}", file=sys.stderr)
        await phone.client.close()  # nothing else was started
        return 2
    went_ready = False
    try:
        while True:
            if args.ready and not went_ready and phone.session.link.value == "online":
                went_ready = True
                phone.command("go_ready")
            try:
                line = await asyncio.wait_for(lines.get(), 0.2)
            except TimeoutError:
                continue
            if line is None:
                break
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "save" and len(words) == 2:
                sink.save(Path(words[1]))
                print(json.dumps({"saved": words[1]}), flush=True)
                continue
            make = COMMANDS.get(words[0])
            try:
                if make is None:
                    raise InvalidStateError(f"unknown command {words[0]!r}: "
                                            f"{', '.join(sorted(COMMANDS))}, save, quit")
                name, *cargs = make(words[1:])
                phone.command(name, *cargs)
            except (InvalidStateError, IndexError) as exc:
                print(json.dumps({"error": str(exc) or f"{words[0]}: missing argument"}),
                      flush=True)
    finally:
        await phone.stop()
        if args.record:
            sink.save(args.record)
    return 0
