"""A call worker: one PJSIP endpoint (up to PJSUA's 4 legs) running the IVR flow.

Life cycle::

    STARTING --ready--> SERVING --SIGTERM/SIGINT--> DRAINING --calls done or
                                                      drain_timeout_s--> STOPPING --> STOPPED

While DRAINING, new INVITEs are answered 503 with Retry-After at once; calls in progress
finish their flow until ``drain_timeout_s``, then get a BYE and are recorded as ``shutdown``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from enum import Enum

from media import CallLeg
from media.phone import Phone, PhoneConfig

from .config import Settings
from .flow import Flow, FlowError, check_prompts, load_flow
from .logs import log_event
from .prompts import PromptSet, load_prompt_sets
from .session import CallSession
from .store import CallStore

log = logging.getLogger("ivr.worker")


class WorkerState(str, Enum):
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
        pjsip_log_level=s.media.pjsip_log_level,
    )


def load_flow_and_prompts(settings: Settings) -> tuple[Flow, PromptSet]:
    try:
        flow, smap = load_flow(settings.paths.flow)
    except FlowError as exc:
        raise StartupError(f"the flow cannot be used:\n{exc}") from exc
    sets = load_prompt_sets(settings.paths.prompts_dir, settings.paths.var_dir / "cache" / "prompts",
                            settings.media.clock_rate_hz)
    if flow.language not in sets:
        raise StartupError(
            f"{settings.paths.flow}: language {flow.language!r} has no prompt set in "
            f"{settings.paths.prompts_dir} (have: {', '.join(sorted(sets))})")
    prompt_set = sets[flow.language]
    issues = check_prompts(flow, smap, set(prompt_set.files), prompt_set.name)
    if issues:
        raise StartupError("the flow cannot be used:\n" + str(FlowError(issues)))
    return flow, prompt_set


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = WorkerState.STARTING
        self.sessions: dict[CallSession, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._phone: Phone | None = None
        self._store: CallStore | None = None
        self._flow: Flow | None = None
        self._prompts: PromptSet | None = None

    def _set_state(self, new: WorkerState) -> None:
        log_event("worker.state", worker=self.settings.worker.name, old=self.state.value,
                  new=new.value)
        self.state = new

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        s = self.settings
        from media.errors import MediaError
        try:
            self._flow, self._prompts = load_flow_and_prompts(s)
        except MediaError as exc:
            raise StartupError(str(exc)) from exc
        self._store = CallStore(s.db_path)
        orphans = self._store.close_orphans(time.time(), "failure", worker=s.worker.name)
        if orphans:
            log_event("worker.orphans_closed", worker=s.worker.name, calls=len(orphans))
        self._phone = Phone(phone_config(s), self._on_incoming)
        try:
            await self._phone.start()
        except MediaError as exc:
            self._store.close()
            raise StartupError(str(exc)) from exc
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._set_state(WorkerState.SERVING)
        log_event("worker.ready", worker=s.worker.name, sip=f"{s.sip.bind_address}:{s.sip.port}",
                  transports=s.sip.transports, flow=self._flow.name,
                  flow_version=self._flow.version, prompts=self._prompts.name,
                  max_calls=s.worker.max_calls)
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self._set_state(WorkerState.STOPPING)
            await self._phone.stop()
            for task in list(self.sessions.values()):
                task.cancel()
            if self.sessions:
                await asyncio.gather(*self.sessions.values(), return_exceptions=True)
            self._store.close()
            self._set_state(WorkerState.STOPPED)

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
        assert self._flow is not None and self._prompts is not None and self._store is not None
        session = CallSession(leg, self._flow, self._prompts, self._store,
                              self.settings.worker.name,
                              media_timeout_s=self.settings.worker.media_timeout_s)
        task = asyncio.get_running_loop().create_task(session.run_call(),
                                                      name=f"call-{session.call_id}")
        self.sessions[session] = task
        task.add_done_callback(lambda _t: self.sessions.pop(session, None))
