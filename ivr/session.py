"""One caller's session: runs the flow interpreter over a call leg and records the call.

This is the I/O edge around :class:`~ivr.flow.FlowRun`: it answers, feeds the interpreter the
leg's events with the time, carries out its actions on the leg, and writes each event to the
store and the structured log as it happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from media import (
    CallLeg,
    DtmfReceived,
    HangupSide,
    LegGoneError,
    LegHungUp,
    MediaError,
    MediaReady,
    PlaybackFinished,
)

from .flow import Flow, FlowRun, Hangup, Note, Play, StopPlayback
from .flow.interpreter import Action
from .logs import log_event
from .prompts import PromptSet
from .store import CallRecorder, StoreError

log = logging.getLogger("ivr.session")

HANGUP_CONFIRM_S = 5.0


class CallSession:
    def __init__(
        self,
        leg: CallLeg,
        flow: Flow,
        prompts: PromptSet,
        store: CallRecorder,
        worker: str,
        *,
        media_timeout_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.leg = leg
        self.flow = flow
        self.prompts = prompts
        self.store = store
        self.worker = worker
        self.media_timeout_s = media_timeout_s
        self.call_id = uuid.uuid4().hex
        self.run = FlowRun(flow)
        self._wall = wall_clock
        self._mono = asyncio.get_running_loop().time
        self._terminate_reason: str | None = None
        self._flow_hangup_reason: str | None = None
        self.ended = False

    # -- recording -----------------------------------------------------------------------

    def _record(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except StoreError:
            log.exception("call %s: could not store %s", self.call_id, what)

    def _end(self, reason: str, hangup_by: str, code: int | None, sip_reason: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        at = self._wall()
        self._record("end", lambda: self.store.call_ended(
            self.call_id, at, reason=reason, hangup_by=hangup_by, sip_code=code,
            sip_reason=sip_reason))
        log_event("call.ended", call_id=self.call_id, reason=reason, hangup_by=hangup_by,
                  sip_code=code, sip_reason=sip_reason, node=self.run.node_name,
                  menu_path=" ".join(self.run.path))

    # -- driving -------------------------------------------------------------------------

    def terminate(self, reason: str) -> None:
        """Ask the session to end its call now (worker shutdown); returns at once."""
        if self._terminate_reason is None and not self.ended:
            self._terminate_reason = reason
            asyncio.get_running_loop().create_task(self._hangup_quietly())

    async def _hangup_quietly(self) -> None:
        try:
            await self.leg.hangup(503)
        except MediaError:
            pass

    async def run_call(self) -> None:
        leg = self.leg
        at = self._wall()
        self._record("arrival", lambda: self.store.call_arrived(
            self.call_id, at, sip_call_id=leg.sip_call_id, worker=self.worker,
            from_uri=leg.remote_uri, to_uri=leg.local_uri, flow=self.flow.name,
            flow_version=self.flow.version))
        log_event("call.arrived", call_id=self.call_id, sip_call_id=leg.sip_call_id,
                  from_uri=leg.remote_uri, to_uri=leg.local_uri, flow=self.flow.name,
                  worker=self.worker)
        try:
            await self._answer_and_run()
        except asyncio.CancelledError:
            self._end("failure", "system", None, "session cancelled")
            raise
        except Exception as exc:
            log.exception("call %s failed", self.call_id)
            self._end("failure", "system", None, f"internal error: {exc}")
            try:
                await leg.hangup(500)
            except MediaError:
                pass

    async def _answer_and_run(self) -> None:
        leg = self.leg
        try:
            await leg.answer(200)
        except LegGoneError:
            pass
        media = await self._wait_media()
        if media is None:
            return
        at = self._wall()
        self._record("answer", lambda: self.store.call_answered(
            self.call_id, at, codec=media.codec, telephone_event=media.telephone_event,
            inband_dtmf=media.inband_dtmf))
        log_event("call.answered", call_id=self.call_id, codec=media.codec,
                  clock_rate_hz=media.clock_rate_hz, telephone_event=media.telephone_event,
                  inband_dtmf=media.inband_dtmf)
        await self._apply(self.run.start(self._mono()))
        while not self.ended:
            deadline = self.run.deadline
            timeout = None if deadline is None else max(0.0, deadline - self._mono())
            try:
                event = await asyncio.wait_for(leg.next_event(), timeout)
            except TimeoutError:
                await self._apply(self.run.on_timer(self._mono()))
                continue
            await self._on_event(event)

    async def _wait_media(self) -> MediaReady | None:
        leg = self.leg
        deadline = self._mono() + self.media_timeout_s
        while True:
            try:
                event = await asyncio.wait_for(leg.next_event(), max(0.0, deadline - self._mono()))
            except TimeoutError:
                log_event("call.no_media", call_id=self.call_id)
                await leg.hangup(408)
                await self._await_hangup()
                if not self.ended:
                    self._end("no_media", "ivr", None, "no audio within media_timeout_s")
                return None
            if isinstance(event, MediaReady):
                return event
            if isinstance(event, LegHungUp):
                self._on_leg_hung_up(event)
                return None

    async def _on_event(self, event: object) -> None:
        now = self._mono()
        if isinstance(event, DtmfReceived):
            node = self.run.node_name
            at = self._wall()
            self._record("dtmf", lambda: self.store.call_dtmf(
                self.call_id, at, digit=event.digit, method=event.method.value, node=node))
            log_event("call.dtmf", call_id=self.call_id, digit=event.digit,
                      method=event.method.value, node=node)
            await self._apply(self.run.on_digit(event.digit, now))
        elif isinstance(event, PlaybackFinished):
            if event.playback_id == self.leg.current_playback_id:
                await self._apply(self.run.on_playback_done(now))
        elif isinstance(event, LegHungUp):
            self._on_leg_hung_up(event)

    def _on_leg_hung_up(self, event: LegHungUp) -> None:
        for action in self.run.on_caller_hangup(self._mono()):
            self._note(action)
        if event.side is HangupSide.REMOTE:
            self._end("caller_hangup", "caller", event.status_code, event.reason)
        elif self._flow_hangup_reason is not None:
            self._end(self._flow_hangup_reason, "ivr", event.status_code, event.reason)
        else:
            self._end(self._terminate_reason or "failure", "system", event.status_code,
                      event.reason)

    def _note(self, action: Action) -> None:
        if not isinstance(action, Note):
            return
        at = self._wall()
        data = action.data
        if action.kind == "node":
            self._record("node", lambda: self.store.call_node(
                self.call_id, at, node=str(data["node"]), node_type=str(data["type"])))
        elif action.kind == "menu.choice":
            self._record("menu choice", lambda: self.store.call_menu_choice(
                self.call_id, at, node=str(data["node"]), key=str(data["key"]),
                target=str(data["target"])))
        elif action.kind != "dtmf":  # digits are stored with their method by _on_event
            self._record(action.kind, lambda: self.store.call_event(
                self.call_id, at, action.kind, dict(data)))
        if action.kind != "dtmf":
            log_event(f"flow.{action.kind}" if not action.kind.startswith("flow.")
                      else action.kind, call_id=self.call_id, **data)

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Note):
                self._note(action)
            elif isinstance(action, Play):
                try:
                    await self.leg.play(self.prompts.paths(action.prompts))
                except LegGoneError:
                    return
                except MediaError as exc:
                    log.error("call %s: cannot play %s: %s", self.call_id, action.prompts, exc)
                    self._flow_hangup_reason = "failure"
                    await self._hangup()
                    return
            elif isinstance(action, StopPlayback):
                await self.leg.stop_playback()
            elif isinstance(action, Hangup):
                self._flow_hangup_reason = action.reason
                await self._hangup()

    async def _hangup(self) -> None:
        try:
            await self.leg.hangup()
        except LegGoneError:
            pass
        await self._await_hangup()

    async def _await_hangup(self) -> None:
        """Wait for PJSIP to confirm the end of the leg (BYE answered or timed out)."""
        deadline = self._mono() + HANGUP_CONFIRM_S
        while not self.ended:
            try:
                event = await asyncio.wait_for(
                    self.leg.next_event(), max(0.0, deadline - self._mono()))
            except TimeoutError:
                self._end(self._flow_hangup_reason or "failure", "ivr", None,
                          "no answer to BYE")
                return
            if isinstance(event, LegHungUp):
                self._on_leg_hung_up(event)
