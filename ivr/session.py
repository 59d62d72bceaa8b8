"""One caller's session: runs the flow interpreter over a call leg and records the call.

This is the I/O edge around :class:`~ivr.flow.FlowRun`: it answers, feeds the interpreter the
leg's events with the time, carries out its actions on the leg, and writes each event to the
store and the structured log as it happens.

A call has one inbox: the caller's leg events, every agent leg's (``ivr/queue_call.py``
places them) and the controller's messages for this call (``ivr/messages.py``, given by the
worker with :meth:`CallSession.deliver`) arrive there in order, and one loop takes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from media import (
    CallLeg,
    DtmfReceived,
    HangupSide,
    LegEvent,
    LegGoneError,
    LegHungUp,
    MediaError,
    MediaReady,
    MediaTimedOut,
    PlaybackFinished,
    PromptError,
    SessionExpired,
)

from .flow import Flow, FlowRun, Hangup, Note, Play, RunState, StopPlayback
from .flow.interpreter import (
    MASK,
    Action,
    LeaveQueue,
    Listen,
    Lookup,
    QueueCall,
    RequestCallback,
    StartMusic,
    StartRecording,
    StopListening,
    StopMusic,
    StopRecording,
    Transfer,
)
from .logs import log_event
from .messages import Message
from .prompts import PromptSet
from .queue_call import AcdCall, AcdLink, AcdMedia, ControllerLost
from .speech.service import SpeechClient
from .speech_call import CallSpeech, SpeechHeard, SpeechOnset
from .store import CallRecorder, StoreError

log = logging.getLogger("ivr.session")

HANGUP_CONFIRM_S = 5.0
SILENCE_POLL_S = 0.25
_SIP_USER = re.compile(r"sips?:([^@;>]+)@")
_DISPLAY = re.compile(r'^\s*"([^"]*)"')


def call_variables(leg: CallLeg, call_id: str) -> dict[str, str]:
    """What a flow knows of a call from its SIP headers."""
    caller = _SIP_USER.search(leg.remote_uri)
    called = _SIP_USER.search(leg.local_uri)
    name = _DISPLAY.match(leg.remote_uri)
    return {
        "caller": caller.group(1) if caller else "",
        "caller_name": name.group(1) if name else "",
        "caller_uri": leg.remote_uri,
        "called": called.group(1) if called else "",
        "call_id": call_id,
        "sip_call_id": leg.sip_call_id,
    }


class CallSession:
    def __init__(
        self,
        leg: CallLeg,
        flow: Flow,
        prompts: Mapping[str, PromptSet],
        store: CallRecorder,
        worker: str,
        *,
        media_timeout_s: float = 5.0,
        recordings_dir: Path = Path("var/recordings"),
        flow_vars: Mapping[str, str] | None = None,
        wall_clock: Callable[[], float] = time.time,
        acd_link: AcdLink | None = None,
        acd_media: AcdMedia | None = None,
        info_base_url: str = "",
        speech: SpeechClient | None = None,
    ) -> None:
        self.leg = leg
        self.flow = flow
        self.prompts = prompts
        self.store = store
        self.worker = worker
        self.media_timeout_s = media_timeout_s
        self.recordings_dir = recordings_dir
        self.call_id = uuid.uuid4().hex
        variables = {**flow.vars, **(flow_vars or {}), **call_variables(leg, self.call_id)}
        self.run = FlowRun(flow, variables,
                           wall=lambda: dt.datetime.fromtimestamp(wall_clock(), dt.UTC))
        self._wall = wall_clock
        self._pending: asyncio.Task[Any] | None = None
        # The one read of the leg's events in progress: shared by the main loop and the waits
        # for the end (a second reader would take the LegHungUp the other one waits for).
        self._next_event: asyncio.Task[Any] | None = None
        self._recording: Path | None = None
        self._recordings = 0
        self._mono = asyncio.get_running_loop().time
        self._terminate_reason: str | None = None
        self._flow_hangup_reason: str | None = None
        self.ended = False
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.speech = CallSpeech(leg, speech, self.call_id, self.inbox.put_nowait)
        self._forwarders: list[asyncio.Task[None]] = []
        # The ACD part (ivr/queue_call.py): only with a controller to ask and a phone to call
        # agents from; without one a queue node goes on at on_unavailable.
        self.acd: AcdCall | None = None
        if acd_link is not None and acd_media is not None:
            self.acd = AcdCall(
                self.call_id, self.run, leg, acd_link, acd_media, apply=self._apply,
                note=lambda kind, data: self._note(Note(kind, data)), forward=self._forward,
                now=self._mono, wall=wall_clock, recordings_dir=recordings_dir,
                info_url=f"{info_base_url}/api/v1/calls/{self.call_id}" if info_base_url
                else "",
                fixed_vars=frozenset({**flow.vars, **(flow_vars or {})}))

    def deliver(self, item: Message | ControllerLost) -> None:
        """A controller message for this call (or the news that the controller is gone)."""
        self.inbox.put_nowait(item)

    def _forward(self, leg: CallLeg) -> None:
        """Feed ``leg``'s events to the inbox, up to its end."""
        async def forward() -> None:
            while True:
                event = await leg.next_event()
                self.inbox.put_nowait(event)
                if isinstance(event, LegHungUp):
                    return

        self._forwarders.append(asyncio.ensure_future(forward()))

    # -- recording -----------------------------------------------------------------------

    def _record(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except StoreError:
            log.exception("call %s: could not store %s", self.call_id, what)

    def _end(self, reason: str, hangup_by: str, code: int | None, sip_reason: str | None) -> None:
        """Record the end once. Reasons are listed in docs/flows.md ("End reasons")."""
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
        self._forward(leg)
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
        finally:
            if self._next_event is not None:
                self._next_event.cancel()
                self._next_event = None
            if self.acd is not None:
                try:
                    await self.acd.caller_gone()
                except MediaError as exc:
                    log.warning("call %s: agent legs at the end: %s", self.call_id, exc)
            for task in self._forwarders:
                task.cancel()

    async def _answer_and_run(self) -> None:
        leg = self.leg
        try:
            await leg.answer(200)
        except LegGoneError:
            pass
        except MediaError as exc:
            # The caller (or the front, failing over) gave up before we answered: PJSIP has
            # ended the INVITE session; its DISCONNECTED event tells how.
            log.info("call %s: could not answer: %s", self.call_id, exc)
        media = await self._wait_media()
        if media is None:
            return
        at = self._wall()
        self._record("answer", lambda: self.store.call_answered(
            self.call_id, at, codec=media.codec, telephone_event=media.telephone_event,
            inband_dtmf=media.inband_dtmf))
        log_event("call.answered", call_id=self.call_id, codec=media.codec,
                  clock_rate_hz=media.clock_rate_hz, telephone_event=media.telephone_event,
                  inband_dtmf=media.inband_dtmf, srtp=media.srtp)
        await self._apply(self.run.start(self._mono()))
        try:
            while not self.ended:
                deadline = self.run.deadline
                timeout = None if deadline is None else max(0.0, deadline - self._mono())
                if self.run.state is RunState.RECORDING:
                    timeout = SILENCE_POLL_S if timeout is None else min(timeout, SILENCE_POLL_S)
                next_event = self._event_task()
                waiting: set[asyncio.Task[Any]] = {next_event}
                if self._pending is not None:
                    waiting.add(self._pending)
                done, _ = await asyncio.wait(waiting, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if self._pending is not None and self._pending in done:
                    finished, self._pending = self._pending, None
                    await self._apply(finished.result())
                if next_event in done and self._next_event is next_event:
                    self._next_event = None
                    await self._on_event(next_event.result())
                elif not done:
                    now = self._mono()
                    if self.run.state is RunState.RECORDING and self._silence_over():
                        await self._apply(self.run.on_silence(now))
                    await self._apply(self.run.on_timer(now))
        finally:
            if self._next_event is not None:
                self._next_event.cancel()
                self._next_event = None
            if self._pending is not None:
                self._pending.cancel()
            self.speech.close()

    def _event_task(self) -> asyncio.Task[Any]:
        """The pending read of the inbox's next item, started if none is."""
        if self._next_event is None:
            self._next_event = asyncio.ensure_future(self.inbox.get())
        return self._next_event

    def _is_caller_end(self, event: object) -> bool:
        return isinstance(event, LegHungUp) and event.leg_id == self.leg.leg_id

    async def _take_event(self, timeout_s: float) -> object:
        """The leg's next event, or TimeoutError (the read stays pending for the next call)."""
        task = self._event_task()
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s))
        if not done:
            raise TimeoutError
        self._next_event = None
        return task.result()

    async def _wait_media(self) -> MediaReady | None:
        leg = self.leg
        deadline = self._mono() + self.media_timeout_s
        while True:
            try:
                event = await self._take_event(deadline - self._mono())
            except TimeoutError:
                log_event("call.no_media", call_id=self.call_id)
                await leg.hangup(408)
                await self._await_hangup()
                if not self.ended:
                    self._end("no_media", "ivr", None, "no audio within media_timeout_s")
                return None
            if isinstance(event, MediaReady) and event.leg_id == self.leg.leg_id:
                return event
            if isinstance(event, LegHungUp) and self._is_caller_end(event):
                self._on_leg_hung_up(event)
                return None

    def _silence_over(self) -> bool:
        node = self.flow.nodes[self.run.node_name]
        limit = getattr(node, "silence_end_s", 0.0)
        leg: Any = self.leg
        return bool(limit and leg.heard_voice and leg.trailing_silence_s >= limit)

    async def _on_event(self, event: object) -> None:
        now = self._mono()
        if isinstance(event, Message | ControllerLost):
            if self.acd is not None:
                await self.acd.on_message(event)
            return
        if isinstance(event, LegEvent) and event.leg_id != self.leg.leg_id:
            if self.acd is not None:
                await self.acd.on_agent_event(event)
            return
        if type(event).__name__ == "TransferResult":
            ev: Any = event
            if ev.final:
                ok = bool(ev.accepted and 200 <= ev.status_code < 300)
                await self._apply(self.run.on_transfer_result(now, ok, ev.status_code))
            return
        if isinstance(event, SpeechOnset):
            await self._apply(self.run.on_speech_started(now))
            return
        if isinstance(event, SpeechHeard):
            await self._apply(self.run.on_speech_result(now, list(event.hypotheses)))
            return
        if isinstance(event, DtmfReceived):
            node = self.run.node_name
            at = self._wall()
            actions = self.run.on_digit(event.digit, now)
            # A key of a sensitive entry (card number, PIN) is recorded as MASK, never itself.
            digit = MASK if self.run.digit_masked else event.digit
            self._record("dtmf", lambda: self.store.call_dtmf(
                self.call_id, at, digit=digit, method=event.method.value, node=node))
            log_event("call.dtmf", call_id=self.call_id, digit=digit,
                      method=event.method.value, node=node)
            await self._apply(actions)
        elif isinstance(event, PlaybackFinished):
            if event.playback_id == self.leg.current_playback_id:
                await self._apply(self.run.on_playback_done(now))
        elif isinstance(event, LegHungUp):
            if self._recording is not None:  # a message ended by hanging up: keep it if any
                await self._finish_recording()
            self._on_leg_hung_up(event)
            if self.acd is not None:
                await self.acd.caller_gone()
        elif isinstance(event, MediaTimedOut | SessionExpired):
            self._on_dead_call(event)

    def _on_dead_call(self, event: MediaTimedOut | SessionExpired) -> None:
        """The caller is gone without a BYE (docs/architecture.md, Dead calls): no RTP for
        media.rtp_timeout_s (we hang up), or the session timer ran out (PJSIP hangs up)."""
        if isinstance(event, MediaTimedOut):
            log_event("call.rtp_timeout", call_id=self.call_id, silent_s=event.silent_s)
            self.terminate("rtp_timeout")
        elif self._terminate_reason is None:
            log_event("call.session_expired", call_id=self.call_id)
            self._terminate_reason = "session_expired"

    def _on_leg_hung_up(self, event: LegHungUp) -> None:
        for action in self.run.on_caller_hangup(self._mono()):
            self._note(action)
        if event.no_ack:
            self._end("no_ack", "system", event.status_code,
                      "the caller never ACKed the 200 OK (RFC 3261 timer H)")
        elif event.side is HangupSide.REMOTE:
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
                names = [p if ":" in p else f"{self.run.language}:{p}" for p in action.prompts]
                self._record_play(names)
                try:
                    await self.leg.play(self._prompt_paths(action.prompts))
                except LegGoneError:
                    return
                except MediaError as exc:
                    log.error("call %s: cannot play %s: %s", self.call_id, action.prompts, exc)
                    self._flow_hangup_reason = "failure"
                    await self._hangup()
                    return
            elif isinstance(action, StopPlayback):
                await self.leg.stop_playback()
            elif isinstance(action, Listen):
                await self.speech.listen(action)
            elif isinstance(action, StopListening):
                await self.speech.stop()
            elif isinstance(action, Hangup):
                self._flow_hangup_reason = action.reason
                await self._hangup()
            elif isinstance(action, StartRecording):
                await self._start_recording()
            elif isinstance(action, StopRecording):
                await self._stop_recording()
            elif isinstance(action, Lookup):
                self._pending = asyncio.ensure_future(self._lookup(action))
            elif isinstance(action, QueueCall):
                self._note(Note("queue.requested", {"queue": action.queue,
                                                    "skills": list(action.skills),
                                                    "priority": action.priority}))
                if self.acd is not None:
                    await self.acd.join(action)
                else:  # a standalone worker: no controller, no ACD
                    await self._apply(self.run.on_queue_result(self._mono(), False, "no ACD"))
            elif isinstance(action, StartMusic | StopMusic):
                await self._music(action)
            elif isinstance(action, LeaveQueue):
                if self.acd is not None:
                    await self.acd.left_with_key(action.key)
            elif isinstance(action, RequestCallback):
                if self.acd is not None:
                    await self.acd.request_callback(action.number)
                else:
                    await self._apply(self.run.on_callback_refused(self._mono(), "no ACD"))
            elif isinstance(action, Transfer):
                try:
                    await self.leg.transfer(action.uri)
                except MediaError as exc:
                    await self._apply(self.run.on_transfer_result(self._mono(), False, 0))
                    log.warning("call %s: transfer to %s failed: %s", self.call_id,
                                action.uri, exc)

    async def _music(self, action: StartMusic | StopMusic) -> None:
        try:
            if isinstance(action, StartMusic):
                await self.leg.start_moh(self._prompt_paths((action.prompt,))[0])
            else:
                await self.leg.stop_moh()
        except LegGoneError:
            pass
        except MediaError as exc:  # the caller waits in silence rather than being dropped
            log.error("call %s: music on hold: %s", self.call_id, exc)

    def _record_play(self, names: list[str]) -> None:
        at = self._wall()
        data = {"prompts": names, "node": self.run.node_name}
        self._record("play", lambda: self.store.call_event(self.call_id, at, "play", data))

    def _prompt_paths(self, prompts: tuple[str, ...]) -> list[Path]:
        out = []
        for prompt in prompts:
            set_name, _, bare = prompt.rpartition(":")
            prompt_set = self.prompts.get(set_name or self.run.language)
            if prompt_set is None:
                raise PromptError(f"no prompt set {set_name or self.run.language!r}")
            out.append(prompt_set.path(bare))
        return out

    async def _start_recording(self) -> None:
        self._recordings += 1
        day = dt.datetime.fromtimestamp(self._wall(), dt.UTC).strftime("%Y-%m-%d")
        path = self.recordings_dir / day / f"{self.call_id}-{self._recordings}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        leg: Any = self.leg
        try:
            await leg.start_recording(path)
        except MediaError as exc:
            log.error("call %s: cannot record: %s", self.call_id, exc)
            await self._apply(self.run.on_recording_done(self._mono(), "", 0.0, False))
            return
        self._recording = path

    async def _stop_recording(self) -> None:
        if self._recording is None:
            return
        path, duration_s, heard = await self._finish_recording()
        await self._apply(self.run.on_recording_done(self._mono(), path, duration_s, heard))

    async def _finish_recording(self) -> tuple[str, float, bool]:
        """Stop the recording (also on a leg that has ended) and keep the WAV only if it holds
        the caller's voice: a recording of silence is deleted and is not recorded as a
        ``recording`` (its path is given as ""). Returns (path, duration, heard voice)."""
        path, self._recording = self._recording, None
        assert path is not None
        leg: Any = self.leg
        try:
            duration_s = float(await leg.stop_recording())
        except MediaError as exc:
            log.error("call %s: recording failed: %s", self.call_id, exc)
            duration_s = 0.0
        heard = bool(leg.heard_voice)
        if not heard:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("call %s: cannot delete the silent recording %s: %s",
                            self.call_id, path, exc)
            return "", duration_s, False
        at = self._wall()
        self._record("recording", lambda: self.store.call_event(
            self.call_id, at, "recording", {"path": str(path), "duration_s": duration_s,
                                            "heard_voice": heard}))
        return str(path), duration_s, True

    async def _lookup(self, action: Lookup) -> list[Action]:
        from .services import http_lookup

        ok, data, error = await http_lookup(action.url, action.method, action.body,
                                            action.timeout_s)
        return self.run.on_lookup_result(self._mono(), ok, data, error)

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
                event = await self._take_event(deadline - self._mono())
            except TimeoutError:
                self._end(self._flow_hangup_reason or "failure", "ivr", None,
                          "no answer to BYE")
                return
            if self._is_caller_end(event):
                assert isinstance(event, LegHungUp)
                self._on_leg_hung_up(event)
