"""The controller's pool room: the worker slots, the zygote that forks their workers, and
the SIP front (Kamailio), each started, watched and restarted when it dies.

``PoolSupervision`` is a part of :class:`ivr.controller.Controller` (a mixin: the
attributes it uses are declared below and set by the controller).

Slot states::

    EMPTY --spawn--> STARTING --hello--> SERVING --drain, retire-> DRAINING
                        |                  |                           |
                        +------ exit / link lost (any state) ---------> EMPTY (+ restart)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .config import Settings
from .front import Front
from .logs import log_alarm, log_event
from .protocol import encode
from .supervise import ZYGOTE_PID_FILE, exit_how, identify


class SlotState(StrEnum):
    EMPTY = "empty"
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class ControllerError(Exception):
    """The stack cannot start; the message says which part and why."""


@dataclass
class WorkerSlot:
    slot: int
    name: str
    sip_port: int
    rtp_port_start: int
    address: str = "127.0.0.1"
    state: SlotState = SlotState.EMPTY
    pid: int | None = None
    legs: int = 0
    max_calls: int = 4
    writer: asyncio.StreamWriter | None = None
    started_at: float = 0.0
    restarts: int = 0
    open_calls: set[str] = field(default_factory=set)
    exit_seen: asyncio.Event = field(default_factory=asyncio.Event)
    exit_info: str = ""
    spawned: asyncio.Event = field(default_factory=asyncio.Event)  # the zygote named its pid
    idle_since: float | None = None  # monotonic; None while it has a call
    orphaned: bool = False  # its zygote died: nobody will report its exit
    respawn: bool = False  # lost while no zygote could fork its replacement

    def is_empty(self) -> bool:
        return self.state is SlotState.EMPTY

    @property
    def uri(self) -> str:
        return f"sip:{self.address}:{self.sip_port}"


class PoolSupervision:
    settings: Settings
    slots: list[WorkerSlot]
    socket_path: Any
    _zygote: asyncio.subprocess.Process | None
    _zygote_writer: asyncio.StreamWriter | None
    _zygote_ready: asyncio.Event
    _zygote_restarts: int
    _front: Front | None
    _front_restarts: int
    _stopping: bool

    def _background(self, coro: Any) -> None:
        raise NotImplementedError

    def _keep_idle_ready(self) -> None:
        raise NotImplementedError

    # -- zygote ----------------------------------------------------------------------------

    async def _start_zygote(self) -> None:
        env = dict(os.environ)
        self._zygote_ready = asyncio.Event()
        # The socket's absolute path in its command line is how a later start recognises
        # this var dir's zygote and workers (ivr/supervise.py).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.zygote", str(self.socket_path.resolve()),
            env=env, start_new_session=True,
        )
        self._zygote = proc
        (self.settings.run_dir / ZYGOTE_PID_FILE).write_text(f"{proc.pid}\n")
        waiter = asyncio.ensure_future(self._zygote_ready.wait())
        died = asyncio.ensure_future(proc.wait())
        await asyncio.wait({waiter, died}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        died.cancel()
        if not self._zygote_ready.is_set():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            rc = await proc.wait()
            raise ControllerError(
                f"the worker zygote did not start ({exit_how(rc)}); see the log above")
        self._background(self._watch_zygote(proc))

    async def _watch_zygote(self, proc: asyncio.subprocess.Process) -> None:
        """Log the zygote's end; if the stack is not stopping, start a new one and refill
        the pool. Its workers go on serving (they talk to us, not to it)."""
        rc = await proc.wait()
        how = exit_how(rc)
        if self._stopping:
            log_event("zygote.exited", pid=proc.pid, how=how)
            return
        log_alarm("zygote.exited", pid=proc.pid, how=how)
        for slot in self.slots:
            if slot.state is SlotState.EMPTY:
                continue
            if slot.writer is None and not (slot.pid and identify(slot.pid, self.settings.run_dir)):
                slot.state = SlotState.EMPTY  # its spawn order died with the zygote
                slot.respawn = True
            else:
                slot.orphaned = True
        delay_s = self.settings.pool.restart_delay_s
        while not self._stopping:
            await asyncio.sleep(delay_s)
            if self._stopping:
                return
            try:
                await self._start_zygote()
            except ControllerError as exc:
                log_alarm("zygote.restart_failed", error=str(exc))
                delay_s = min(max(2 * delay_s, 1.0), 30.0)
                continue
            self._zygote_restarts += 1
            assert self._zygote is not None
            log_event("zygote.restarted", pid=self._zygote.pid, after=how,
                      restarts=self._zygote_restarts)
            self._refill()
            return

    def _refill(self) -> None:
        """Fork the workers that died while no zygote could replace them."""
        for slot in self.slots:
            if slot.respawn and slot.state is SlotState.EMPTY:
                self._spawn(slot)
        self._keep_idle_ready()

    async def _stop_zygote(self) -> None:
        if self._zygote is None:
            return
        if self._zygote_writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._zygote_writer.write(encode("quit"))
                await self._zygote_writer.drain()
        try:
            await asyncio.wait_for(self._zygote.wait(), 10)
        except TimeoutError:
            log_alarm("zygote.kill", pid=self._zygote.pid, why="did not stop within 10 s")
            with contextlib.suppress(ProcessLookupError):
                self._zygote.kill()
            await self._zygote.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.settings.run_dir / ZYGOTE_PID_FILE).unlink()

    def _spawn(self, slot: WorkerSlot) -> None:
        if self._zygote_writer is None:
            slot.state = SlotState.EMPTY
            slot.respawn = True  # forked when the zygote is back (_refill)
            log_event("pool.spawn_deferred", worker=slot.name, why="no zygote")
            return
        pool = self.settings.pool
        slot.respawn = False
        slot.orphaned = False
        slot.state = SlotState.STARTING
        slot.legs = 0
        slot.pid = None
        slot.exit_seen = asyncio.Event()
        slot.exit_info = ""
        slot.spawned = asyncio.Event()
        slot.idle_since = None
        slot.started_at = time.monotonic()
        self._zygote_writer.write(encode(
            "spawn", slot=slot.slot, name=slot.name, sip_port=slot.sip_port,
            rtp_port_start=slot.rtp_port_start, rtp_port_range=pool.rtp_ports_per_worker,
            address=pool.worker_address))
        log_event("pool.spawn", worker=slot.name, slot=slot.slot, sip_port=slot.sip_port)

    async def _wait_serving(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while sum(1 for x in self.slots if x.state is SlotState.SERVING) < count:
            if time.monotonic() > deadline:
                raise ControllerError(
                    f"only {sum(1 for x in self.slots if x.state is SlotState.SERVING)} of "
                    f"{count} workers started within {timeout_s:.0f} s; see the log above")
            if self._zygote is not None and self._zygote.returncode is not None:
                raise ControllerError("the worker zygote exited; see the log above")
            await asyncio.sleep(0.02)

    def _drain(self, slot: WorkerSlot) -> None:
        if slot.state in (SlotState.EMPTY, SlotState.DRAINING):
            return
        slot.state = SlotState.DRAINING
        if self._front is not None and not self._stopping:
            self._background(self._front.worker_out(slot.uri, draining=True))
        if slot.writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                slot.writer.write(encode("drain", timeout_s=self.settings.worker.drain_timeout_s))
                return
        if slot.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGTERM)

    # -- the SIP front -----------------------------------------------------------------------

    async def _start_front(self) -> None:
        from .front import FrontError, start_front

        try:
            self._front = await start_front(self.settings, [x.uri for x in self.slots],
                                            self._callers_per_worker(),
                                            self._serving_uris())
        except FrontError as exc:
            raise ControllerError(str(exc)) from exc
        self._background(self._watch_front(self._front))

    def _callers_per_worker(self) -> int:
        """Kamailio's load limit per worker: the callers a worker said it takes (its hello;
        fewer than worker.max_calls when the flow keeps a leg for an agent)."""
        said = [x.max_calls for x in self.slots if x.state is SlotState.SERVING]
        return min(said) if said else self.settings.worker.max_calls

    def _serving_uris(self) -> list[str]:
        return [x.uri for x in self.slots if x.state is SlotState.SERVING]

    async def _watch_front(self, front: Front) -> None:
        """Kamailio is the stack's one SIP address: when it dies, start it again at once
        with the pool's current worker states; back off if it keeps dying."""
        from .front import FrontError

        delay_s = 0.0
        while True:
            started = time.monotonic()
            pid = front.process.pid
            rc = await front.wait_exit()
            if self._stopping or front.stopping:
                return
            how = exit_how(rc)
            log_alarm("front.exited", pid=pid, how=how)
            if time.monotonic() - started > 30:
                delay_s = 0.0
            while not self._stopping:
                await asyncio.sleep(delay_s)
                delay_s = min(max(2 * delay_s, 1.0), 30.0)
                try:
                    await front.restart(self._serving_uris)
                except FrontError as exc:
                    log_alarm("front.restart_failed", error=str(exc))
                    continue
                break
            if self._stopping or front.stopping:
                return
            self._front_restarts += 1
            log_event("front.restarted", pid=front.process.pid, exit=how,
                      serving=len(self._serving_uris()), restarts=self._front_restarts)
