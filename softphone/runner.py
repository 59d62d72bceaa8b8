"""The softphone's I/O around the session core: the agent API client, the SIP user agent
(``media.agent_ua``) and the audio, on one asyncio loop.

:class:`Softphone` owns an :class:`~softphone.session.AgentSession`; every input (a command
from the window or the headless console, a server event, a SIP event from the UA's thread,
a timer) goes to the session with ``now``, and the actions it returns are carried out here.
HTTP requests go one at a time, in the order the session gave them (a wrap-up before the
state that follows it). Observers (the window, the headless console) get ``on_change``
after every input, and read the session: they never call HTTP or SIP themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media.agent_ua import (
    AgentUa,
    AgentUaConfig,
    AgentUaEvent,
    CallAnswered,
    CallEnded,
    CallHeld,
    IncomingCall,
    Registered,
)

from . import model as m
from . import outbox as outbox_file
from .client import ApiClient, BadCredentials, ClientError, Refused, Unreachable
from .session import AgentSession

log = logging.getLogger("softphone")

TICK_S = 0.25


@dataclass(frozen=True)
class SoftphoneConfig:
    api_url: str  # http://host:port of the agent API
    sip_proxy: str  # host:port of the stack's SIP front
    agent_id: str
    password: str
    sip_domain: str = "127.0.0.1"
    bind_address: str = "127.0.0.1"
    sip_port: int = 0
    rtp_port: int = 0
    auto_answer_s: float | None = None
    reconnect_max_s: float = 30.0
    outbox_path: Path | None = None  # where waiting wrap-ups are kept (None: memory only)


class Softphone:
    def __init__(self, config: SoftphoneConfig, source: Callable[[int], bytes],
                 sink: Callable[[bytes], None], clock: Callable[[], float] = time.time,
                 on_change: Callable[[], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.session = AgentSession(config.agent_id, auto_answer_s=config.auto_answer_s,
                                    backoff_max_s=config.reconnect_max_s)
        self.client = ApiClient(config.api_url, config.agent_id, config.password)
        self.ua = AgentUa(AgentUaConfig(config.agent_id, config.password, config.sip_proxy,
                                        domain=config.sip_domain,
                                        bind_address=config.bind_address,
                                        sip_port=config.sip_port, rtp_port=config.rtp_port),
                          self._from_ua_thread, source, sink)
        self.on_change = on_change or (lambda: None)
        self.notices: list[m.Notice] = []
        self.registered = False
        self.ringing = False
        self.sip_calls = 0
        self.script: list[str] = []  # the offered call's queue's guided steps
        self.banned: list[str] = []  # phrases to flag in notes (the server's list)
        self.reason_codes: list[tuple[str, str]] = []  # the call-reason tree's codes
        self.not_ready_reasons: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sends: asyncio.Queue[m.Action] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream: asyncio.Task[None] | None = None
        self._saved_outbox: list[m.WrapUp] = []

    # ---- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Raises OutboxError (before anything started) when the kept outbox is unreadable."""
        self._loop = asyncio.get_running_loop()
        if self.config.outbox_path is not None:
            kept = outbox_file.load(self.config.outbox_path)
            self._saved_outbox = list(kept)
            self._carry_out(self.session.restore_outbox(kept, self.clock()))
        await asyncio.to_thread(self.ua.start)
        self._spawn(self._sender())
        self._spawn(self._ticker())
        self.command("sign_in")

    async def stop(self) -> None:
        if self.session.link is m.Link.ONLINE:
            with contextlib.suppress(ClientError):
                await self.client.sign_out()
        for task in list(self._tasks) + ([self._stream] if self._stream else []):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.ua.stop)
        await self.client.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- inputs -------------------------------------------------------------------------

    def command(self, name: str, *args: Any) -> None:
        """An agent's command (a session method by name). Raises InvalidStateError with a
        message for the agent when it cannot be done now."""
        method = getattr(self.session, name)
        self._carry_out(method(*args, now=self.clock()))

    def _from_ua_thread(self, event: AgentUaEvent) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._on_ua_event, event)

    def _on_ua_event(self, event: AgentUaEvent) -> None:
        now = self.clock()
        s = self.session
        if isinstance(event, Registered):
            self.registered = event.ok
            if not event.ok:
                self._carry_out([m.Notice(f"SIP registration failed: {event.status} "
                                          f"{event.reason}")])
            self.on_change()
        elif isinstance(event, IncomingCall):
            self.sip_calls += 1
            self._carry_out(s.incoming_call(event.from_server, now, event.call_info))
        elif isinstance(event, CallAnswered):
            self._carry_out(s.call_answered(now))
        elif isinstance(event, CallHeld):
            self._carry_out(s.call_held(event.held, now))
        elif isinstance(event, CallEnded):
            self._carry_out(s.call_ended(now))

    # ---- actions ------------------------------------------------------------------------

    def _carry_out(self, actions: list[m.Action]) -> None:
        self._keep_outbox()  # on disk before anything is sent
        for action in actions:
            self._do(action)
        self.on_change()

    def _keep_outbox(self) -> None:
        path, now = self.config.outbox_path, self.session.outbox
        if path is None or now == self._saved_outbox:
            return
        try:
            outbox_file.save(path, now)
        except OSError as exc:
            self.notices.append(m.Notice(f"cannot keep the wrap-ups in {path}: {exc}; they "
                                         "are lost if the softphone quits now", "warning"))
            log.warning("%s", self.notices[-1].text)
            return
        self._saved_outbox = list(now)

    def _do(self, action: m.Action) -> None:
        ua = self.ua
        if isinstance(action, m.Connect):
            self._spawn(self._connect())
        elif isinstance(action, m.ReconnectIn):
            assert self._loop is not None
            self._loop.call_later(action.delay_s, lambda: self._carry_out(
                self.session.reconnect_due(self.clock())))
        elif isinstance(action, (m.SendState, m.SendWrapUp, m.Transfer, m.SignOut)):
            self._sends.put_nowait(action)
        elif isinstance(action, m.AnswerCall):
            ua.answer()
        elif isinstance(action, m.HangUpCall):
            ua.hang_up()
        elif isinstance(action, m.RejectCall):
            ua.reject(action.sip_status)
        elif isinstance(action, m.SetMute):
            ua.set_mute(action.muted)
        elif isinstance(action, m.SetHold):
            ua.set_hold(action.held)
        elif isinstance(action, m.SendDtmf):
            ua.send_dtmf(action.digits)
        elif isinstance(action, m.Ring):
            self.ringing = action.on
        elif isinstance(action, m.Notice):
            self.notices.append(action)
            log.log(logging.ERROR if action.level == "error" else logging.WARNING
                    if action.level == "warning" else logging.INFO, "%s", action.text)

    async def _connect(self) -> None:
        try:
            view = await self.client.sign_in()
        except BadCredentials as exc:
            self._carry_out(self.session.sign_in_refused(self.clock(), exc.message))
            return
        except ClientError as exc:
            self._carry_out(self.session.connection_lost(self.clock(), str(exc)))
            return
        log.info("signed in as %s (%s)", view.get("id"), view.get("state"))
        self._stream = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        try:
            async for event in self.client.events():
                now = self.clock()
                if event.get("event") == "hello":
                    self.ua.register_again()
                    self._spawn(self._fetch_lists())
                    self._carry_out(self.session.online(event.get("agent") or {}, now))
                    self._spawn(self._fetch_figures())
                else:
                    was = self.session.status
                    self._carry_out(self.session.server_event(event, now))
                    if event.get("event") == "ended" or (
                            was is m.AcdStatus.WRAP_UP
                            and self.session.status is not m.AcdStatus.WRAP_UP):
                        self._spawn(self._fetch_figures())  # the call (and its ACW) counted
                    if event.get("event") == "offered" and self.session.offer is not None:
                        self._spawn(self._fetch_script(self.session.offer.queue,
                                                       self.session.offer.language))
        except Unreachable as exc:
            self._carry_out(self.session.connection_lost(self.clock(), str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bad message: log it, and connect again
            log.exception("the event stream failed")
            self._carry_out(self.session.connection_lost(self.clock(), str(exc)))

    async def _fetch_lists(self) -> None:
        try:
            codes = await self.client.reason_codes()
            reasons = await self.client.not_ready_reasons()
        except ClientError as exc:
            log.warning("no reason codes from the server: %s", exc)
            return
        self.reason_codes = [(c["code"], c["label"]) for c in codes]
        self.not_ready_reasons = [r for r in reasons if r != "no-answer"]
        self.on_change()

    async def _fetch_figures(self) -> None:
        try:
            got = await self.client.figures()
        except ClientError as exc:  # the panel keeps what it had
            log.warning("no figures from the server: %s", exc)
            return
        self._carry_out(self.session.take_server_figures(got, self.clock()))

    async def _fetch_script(self, queue: str, language: str) -> None:
        try:
            got = await self.client.script(queue, language)
        except ClientError as exc:  # the pop shows without it
            log.warning("no script for queue %s: %s", queue, exc)
            return
        self.script = [str(s) for s in got.get("steps", [])]
        self.banned = [str(s) for s in got.get("banned_phrases", [])]
        self.on_change()

    async def _sender(self) -> None:
        while True:
            action = await self._sends.get()
            try:
                await self._send(action)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sending %s failed", action)

    async def _send(self, action: m.Action) -> None:
        s, now = self.session, self.clock
        try:
            if isinstance(action, m.SendState):
                await self.client.set_state(action.state.value, action.reason)
            elif isinstance(action, m.SendWrapUp):
                w = action.wrapup
                await self.client.wrapup(w.code, w.note, w.call_id)
                self._carry_out(s.wrapup_delivered(w.wrapup_id, now()))
            elif isinstance(action, m.Transfer):
                await self.client.transfer(action.to)
            elif isinstance(action, m.SignOut):
                await self.client.sign_out()
        except Refused as exc:
            if isinstance(action, m.SendWrapUp):
                self._carry_out(s.wrapup_refused(action.wrapup.wrapup_id, exc.message, now()))
            else:
                self._carry_out([m.Notice(f"the server refused: {exc.message}", "error")])
        except Unreachable as exc:
            if isinstance(action, m.SendState):
                self._carry_out(s.state_not_sent(action.state, action.reason, now(), str(exc)))
            else:  # a wrap-up stays in the outbox; a transfer is the agent's to try again
                self._carry_out(s.connection_lost(now(), str(exc)))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            actions = self.session.tick(self.clock())
            if actions:
                self._carry_out(actions)
