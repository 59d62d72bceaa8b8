"""A call worker: one PJSIP endpoint (up to PJSUA's 4 legs) running the IVR flow.

Life cycle::

    STARTING --ready--> SERVING --SIGTERM/SIGINT--> DRAINING --calls done or
                                                      drain_timeout_s--> STOPPING --> STOPPED

While DRAINING, new INVITEs are answered 503 with Retry-After at once; calls in progress
finish their flow until ``drain_timeout_s``, then get a BYE and are recorded as ``shutdown``.

Capacity: PJSUA gives a worker ``worker.max_calls`` legs (at most 4). When the flow has a
``queue`` node, a caller may need a second leg for their agent, so each caller counts for
two: the worker takes ``max_calls // 2`` callers and answers the next INVITE 503 (the
front tries another worker). Logged at start as ``worker.capacity``.

In a pool, the controller's messages for calls in the ACD (``ivr/messages.py``) are routed
by call id to that call's session (:meth:`CallSession.deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from media import CallLeg
from media.errors import MediaError
from media.phone import Phone, PhoneConfig

from . import messages
from .agent_media import PhoneMedia
from .callback_call import CallbackCall
from .callback_messages import CallbackOffer
from .config import Settings
from .emergency import STATE_MESSAGE
from .flow import Flow
from .flow.model import QueueNode
from .flowset import FlowSetError, load_flow_and_prompts
from .journal import JournalWriter
from .link import ControllerLink, LinkLostError, RemoteRecorder
from .logs import log_event
from .prompts import PromptSet
from .protocol import ProtocolError
from .queue_call import ControllerLost
from .session import CallSession
from .speech.service import SPEECH_SOCKET, SpeechClient
from .store import CallRecorder, CallStore

log = logging.getLogger("ivr.worker")


class WorkerState(StrEnum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


class StartupError(Exception):
    """The worker cannot start: bad flow, prompts, store or SIP address."""


def phone_config(settings: Settings) -> PhoneConfig:
    s = settings
    return PhoneConfig(
        bind_address=s.sip.bind_address,
        sip_port=s.sip.port,
        transports=tuple(s.sip.transports),
        public_address=s.sip.public_address,
        rtp_port=s.rtp.port_start,
        rtp_port_range=s.rtp.port_range,
        max_calls=s.worker.max_calls,
        clock_rate_hz=s.media.clock_rate_hz,
        codecs=tuple(s.media.codecs),
        inband_dtmf=s.media.inband_dtmf,
        pump_timeout_ms=s.media.pump_timeout_ms,
        rtp_thread=s.media.rtp_thread,
        realtime_priority=s.media.realtime_priority,
        pjsip_log_level=s.media.pjsip_log_level,
        trusted_sources=tuple(s.worker.trusted_sources),
        rtp_source=s.media.rtp_source,
        rtp_timeout_s=s.media.rtp_timeout_s,
        session_expires_s=s.sip.session_expires_s,
        srtp=s.media.srtp,
        outbound_proxy=s.worker.outbound_proxy,
    )


def legs_per_caller(flow: Flow) -> int:
    """2 when a caller of ``flow`` may be bridged to an agent (a queue node), else 1."""
    return 2 if any(isinstance(n, QueueNode) for n in flow.nodes.values()) else 1


def max_callers(flow: Flow, max_calls: int) -> int:
    return max(1, max_calls // legs_per_caller(flow))


class Worker:
    """Runs calls on one PJSIP endpoint.

    Standalone (``ivr worker``) it writes its own SQLite store. In a pool it is forked by the
    zygote with the flow and prompts already loaded, and sends its call records and load to
    the controller over ``controller_socket`` instead.
    """

    HEARTBEAT_S = 5.0

    def __init__(self, settings: Settings, *,
                 preloaded: tuple[Flow, dict[str, PromptSet]] | None = None,
                 controller_socket: Path | None = None, slot: int | None = None) -> None:
        self.settings = settings
        self.state = WorkerState.STARTING
        self.sessions: dict[CallSession, asyncio.Task[None]] = {}
        self._by_call_id: dict[str, CallSession | CallbackCall] = {}
        self.emergencies: dict[str, dict[str, Any]] = {}  # storm mode, by queue
        self._media: PhoneMedia | None = None
        self._stop = asyncio.Event()
        self._phone: Phone | None = None
        self._recorder: CallRecorder | None = None
        self._store: CallStore | None = None
        self._link: ControllerLink | None = None
        self._remote: RemoteRecorder | None = None
        self._controller_socket = controller_socket
        self._slot = slot
        self._flow: Flow | None = preloaded[0] if preloaded else None
        self._prompts: dict[str, PromptSet] | None = preloaded[1] if preloaded else None

    def _set_state(self, new: WorkerState) -> None:
        log_event("worker.state", worker=self.settings.worker.name, old=self.state.value,
                  new=new.value)
        self.state = new
        if self._link is not None:
            self._link.send("state", state=new.value)

    def _send_stats(self) -> None:
        if self._link is not None:
            self._link.send("stats", legs=len(self.sessions), state=self.state.value)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.HEARTBEAT_S)
            self._send_stats()

    def _on_controller_message(self, msg: dict[str, Any]) -> None:
        if messages.is_message(msg):
            self._route(msg)
        elif msg["type"] == "drain":
            self.request_stop()
        elif msg["type"] == "reload":
            asyncio.get_running_loop().create_task(self.reload())
        elif msg["type"] == STATE_MESSAGE:
            self._take_emergencies(msg.get("emergencies"))
        else:
            log.warning("unexpected message from the controller: %s", msg["type"])

    def _take_emergencies(self, notices: Any) -> None:
        """Storm mode (ivr/emergency.py): the notices on, queue -> {prompt, expires_at,
        outage_key}; one whose prompt a prompt set lacks is left out (it could not play)."""
        new: dict[str, dict[str, Any]] = {}
        for queue, notice in (notices or {}).items() if isinstance(notices, dict) else ():
            if not isinstance(notice, dict) or not isinstance(notice.get("prompt"), str):
                log.error("bad emergency notice for %s from the controller: %r", queue, notice)
                continue
            lacking = [name for name, ps in (self._prompts or {}).items()
                       if notice["prompt"] not in ps.files]
            if lacking:
                log.error("emergency prompt %r of queue %s is not in prompt set(s) %s: not "
                          "played", notice["prompt"], queue, ", ".join(lacking))
                continue
            new[queue] = notice
        self.emergencies.clear()
        self.emergencies.update(new)  # the sessions' runs hold this very dict
        log_event("worker.emergencies", queues=sorted(new))

    def _route(self, raw: dict[str, Any]) -> None:
        """A message for a call in the ACD, to its session; an Offer for a call that is
        gone is answered OfferFailed(error) so that no agent stays reserved for it."""
        try:
            msg = messages.from_wire(raw)
        except ProtocolError as exc:
            log.error("bad ACD message from the controller: %s", exc)
            return
        session = self._by_call_id.get(msg.call_id)
        if session is not None and not session.ended:
            session.deliver(msg)
            return
        if isinstance(msg, CallbackOffer):
            self._start_callback(msg)
            return
        log.warning("%s for call %s, which this worker does not hold", msg.TYPE, msg.call_id)
        if isinstance(msg, messages.Offer) and self._link is not None:
            self._link.send_message(messages.OfferFailed(msg.call_id, msg.offer_id, "error"))

    def _start_callback(self, offer: CallbackOffer) -> None:
        """A queued callback this worker is to place (ivr/callback_call.py)."""
        if self._media is None or self._link is None:
            if self._link is not None:
                self._link.send_message(messages.OfferFailed(offer.call_id, offer.offer_id,
                                                             "error"))
            return
        call = CallbackCall(offer, self._link, self._media,
                            self.settings.paths.var_dir / "recordings",
                            f"{self.settings.http_url}/api/v1/calls", recorder=self._recorder)
        task = asyncio.get_running_loop().create_task(call.run(), name=f"cb-{offer.call_id}")
        self._by_call_id[offer.call_id] = call
        log_event("worker.callback", callback_id=offer.call_id, agent_id=offer.agent_id)

        def done(_t: asyncio.Task[None]) -> None:
            if self._by_call_id.get(offer.call_id) is call:
                del self._by_call_id[offer.call_id]

        task.add_done_callback(done)

    def _apply_capacity(self) -> None:
        assert self._flow is not None
        callers = max_callers(self._flow, self.settings.worker.max_calls)
        if self._phone is not None:
            self._phone.set_max_inbound(callers)
        log_event("worker.capacity", worker=self.settings.worker.name,
                  legs=self.settings.worker.max_calls,
                  legs_per_caller=legs_per_caller(self._flow), callers=callers)

    async def reload(self) -> bool:
        """Load the flow and prompt sets again; new calls take them, running calls keep
        theirs. A bad flow or set is refused whole and nothing changes."""
        old = self._flow
        try:
            flow, prompts = await asyncio.to_thread(load_flow_and_prompts, self.settings)
        except FlowSetError as exc:
            log_event("worker.reload_refused", worker=self.settings.worker.name, error=str(exc))
            return False
        self._flow, self._prompts = flow, prompts
        self._apply_capacity()
        log_event("worker.reloaded", worker=self.settings.worker.name, flow=flow.name,
                  flow_version=flow.version, previous=old.version if old else None,
                  prompts=sorted(prompts), calls_on_previous=len(self.sessions))
        return True

    async def _serve_link(self, link: ControllerLink) -> None:
        await link.serve(self._on_controller_message)
        if self._remote is not None:
            self._remote.link_lost()
        for session in list(self._by_call_id.values()):
            session.deliver(ControllerLost())
        if self.state is WorkerState.SERVING:
            log.error("the controller went away; draining")
            self.request_stop()

    async def _open_recorder(self) -> CallRecorder:
        s = self.settings
        assert self._flow is not None
        if self._controller_socket is not None:
            self._link = ControllerLink(self._controller_socket, {
                "role": "worker", "worker": s.worker.name, "slot": self._slot,
                "pid": os.getpid(), "sip": f"{s.sip.bind_address}:{s.sip.port}",
                # the callers it takes (a queue in the flow: a leg kept for each agent)
                "max_calls": max_callers(self._flow, s.worker.max_calls),
                "flow": self._flow.name,
                "flow_version": self._flow.version,
            })
            await self._link.connect()
            self._remote = RemoteRecorder(
                self._link, JournalWriter(s.journal_dir, s.worker.name, os.getpid()))
            return self._remote
        self._store = CallStore(s.db_path)
        orphans = self._store.close_orphans(time.time(), "failure", worker=s.worker.name)
        if orphans:
            log_event("worker.orphans_closed", worker=s.worker.name, calls=len(orphans))
        return self._store

    def request_stop(self) -> None:
        self._stop.set()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log_event("worker.signal", worker=self.settings.worker.name, signal=sig.name,
                  state=self.state.value)
        self.request_stop()

    async def run(self) -> None:
        s = self.settings
        if self._flow is None or self._prompts is None:
            try:
                self._flow, self._prompts = load_flow_and_prompts(s)
            except FlowSetError as exc:
                raise StartupError(str(exc)) from exc
        try:
            self._recorder = await self._open_recorder()
        except LinkLostError as exc:
            raise StartupError(str(exc)) from exc
        self._phone = Phone(phone_config(s), self._on_incoming)
        try:
            await self._phone.start()
        except MediaError as exc:
            await self._close_recorder()
            raise StartupError(str(exc)) from exc
        self._media = PhoneMedia(self._phone, s.worker.max_calls)
        self._apply_capacity()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        if self._link is None:  # a lone worker reloads on SIGHUP; a pooled one on command
            loop.add_signal_handler(signal.SIGHUP,
                                    lambda: loop.create_task(self.reload()))
        background = [loop.create_task(self._heartbeat(), name="heartbeat")]
        if self._link is not None:
            background.append(loop.create_task(self._serve_link(self._link), name="link"))
        self._set_state(WorkerState.SERVING)
        self._send_stats()
        log_event("worker.ready", worker=s.worker.name, sip=f"{s.sip.bind_address}:{s.sip.port}",
                  transports=s.sip.transports, flow=self._flow.name,
                  flow_version=self._flow.version, prompts=sorted(self._prompts),
                  max_calls=s.worker.max_calls, outbound_proxy=s.worker.outbound_proxy,
                  pid=os.getpid())
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            # The signal handlers stay until the end: a second SIGTERM while stopping must
            # not kill the worker before PJSIP has sent its BYEs.
            self._set_state(WorkerState.STOPPING)
            await self._phone.stop()
            for task in list(self.sessions.values()):
                task.cancel()
            if self.sessions:
                await asyncio.gather(*self.sessions.values(), return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self._set_state(WorkerState.STOPPED)
            await self._close_recorder()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _close_recorder(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._link is not None:
            await self._link.close()
        if self._remote is not None:
            self._remote.close()

    async def _drain(self) -> None:
        assert self._phone is not None
        self._set_state(WorkerState.DRAINING)
        self._phone.set_accepting(False)
        tasks = list(self.sessions.values())
        if tasks:
            log_event("worker.draining", worker=self.settings.worker.name, calls=len(tasks),
                      timeout_s=self.settings.worker.drain_timeout_s)
            await asyncio.wait(tasks, timeout=self.settings.worker.drain_timeout_s)
        left = [sess for sess, task in self.sessions.items() if not task.done()]
        for sess in left:
            sess.terminate("shutdown")
        if left:
            await asyncio.wait([self.sessions[s] for s in left], timeout=10.0)

    def _on_incoming(self, leg: CallLeg) -> None:
        assert self._flow is not None and self._prompts is not None
        assert self._recorder is not None
        session = CallSession(leg, self._flow, self._prompts, self._recorder,
                              self.settings.worker.name,
                              media_timeout_s=self.settings.worker.media_timeout_s,
                              recordings_dir=self.settings.paths.var_dir / "recordings",
                              flow_vars=self.settings.flows.vars,
                              acd_link=self._link, acd_media=self._media,
                              info_base_url=self.settings.http_url,
                              speech=SpeechClient(self.settings.run_dir / SPEECH_SOCKET))
        session.run.emergencies = self.emergencies
        task = asyncio.get_running_loop().create_task(session.run_call(),
                                                      name=f"call-{session.call_id}")
        self.sessions[session] = task
        self._by_call_id[session.call_id] = session
        self._send_stats()

        def done(_t: asyncio.Task[None]) -> None:
            self.sessions.pop(session, None)
            self._by_call_id.pop(session.call_id, None)
            self._send_stats()

        task.add_done_callback(done)
