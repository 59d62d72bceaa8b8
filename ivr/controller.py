"""The controller: the call store, the pool of call workers, and the SIP front.

It never imports pjsua2. It starts the zygote (the warm parent, ``ivr/zygote.py``) and asks
it to fork workers, one per *slot*; slot ``i`` always listens on ``pool.worker_port_base + i``
so Kamailio's destination list never changes. It applies the call records the workers send
(``ivr/protocol.py``), tracks each worker's live legs, keeps ``pool.min_idle_workers`` idle
workers ready (up to ``pool.max_workers``), and replaces a worker that dies, closing its
calls as ended by failure.

Slot states::

    EMPTY --spawn--> STARTING --hello--> SERVING --drain/SIGTERM--> DRAINING
                        |                  |                           |
                        +------ exit / link lost (any state) ---------> EMPTY (+ restart)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .config import Settings
from .front import Front
from .logs import log_event
from .protocol import PROTOCOL_VERSION, ProtocolError, check_store_op, decode, encode
from .store import CallStore, StoreError, StoreOp

log = logging.getLogger("ivr.controller")

# Store writes waiting for their batch: flushed early at this many; if the database stays
# unwritable, kept for retry up to _STORE_PENDING_MAX (the oldest are dropped, with an error).
_STORE_BATCH_MAX = 2000
_STORE_PENDING_MAX = 200_000


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

    def is_empty(self) -> bool:
        return self.state is SlotState.EMPTY

    @property
    def uri(self) -> str:
        return f"sip:{self.address}:{self.sip_port}"


class Controller:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        pool = settings.pool
        if pool.workers > pool.max_workers:
            raise ControllerError(
                f"pool.workers ({pool.workers}) is more than pool.max_workers "
                f"({pool.max_workers})")
        self.slots = [
            WorkerSlot(i, f"w{i:03d}", pool.worker_port_base + i,
                       settings.rtp.port_start + i * pool.rtp_ports_per_worker,
                       pool.worker_address)
            for i in range(pool.max_workers)
        ]
        self.socket_path = settings.run_dir / "controller.sock"
        self.pid_path = settings.run_dir / "controller.pid"
        self.store: CallStore | None = None
        self._zygote: asyncio.subprocess.Process | None = None
        self._zygote_writer: asyncio.StreamWriter | None = None
        self._zygote_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._server: asyncio.AbstractServer | None = None
        self._front: Front | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._store_pending: list[StoreOp] = []
        self._store_flush: asyncio.TimerHandle | None = None

    # -- life cycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        s = self.settings
        s.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = CallStore(s.db_path)
        except StoreError as exc:
            raise ControllerError(str(exc)) from exc
        closed = self.store.close_orphans(time.time(), "failure")
        if closed:
            log_event("controller.orphans_closed", calls=len(closed))
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._on_connection, path=str(self.socket_path), limit=1 << 20)
        await self._start_zygote()
        for slot in self.slots[: s.pool.workers]:
            self._spawn(slot)
        await self._wait_serving(s.pool.workers, timeout_s=30.0)
        if s.front.enabled:
            await self._start_front()
        log_event("controller.ready", sip=f"{s.sip.bind_address}:{s.sip.port}",
                  workers=sum(1 for x in self.slots if x.state is SlotState.SERVING),
                  max_workers=s.pool.max_workers, legs_per_worker=s.worker.max_calls,
                  front="kamailio" if s.front.enabled else "none", pid=os.getpid())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._background(self.reload()))
        try:
            await self.start()
            self.pid_path.write_text(f"{os.getpid()}\n")
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
            await self.shutdown()

    async def reload(self) -> bool:
        """Vet the flow and prompt sets; if all is well, have the zygote and every worker
        take them for new calls (running calls finish on what they began with)."""
        from .flowset import FlowSetError, load_flow_and_prompts

        try:
            flow, sets = await asyncio.to_thread(load_flow_and_prompts, self.settings)
        except FlowSetError as exc:
            log_event("flow.reload_refused", error=str(exc))
            return False
        if self._zygote_writer is not None:
            self._zygote_writer.write(encode("reload"))
        workers = 0
        for slot in self.slots:
            if slot.writer is not None and slot.state is SlotState.SERVING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    slot.writer.write(encode("reload"))
                    workers += 1
        log_event("flow.reload", flow=flow.name, flow_version=flow.version,
                  prompts=sorted(sets), workers=workers)
        return True

    async def shutdown(self) -> None:
        """Drain every worker (calls finish up to worker.drain_timeout_s), then stop all."""
        if self._stopping:
            return
        self._stopping = True
        live = [x for x in self.slots if x.state is not SlotState.EMPTY]
        log_event("controller.stopping", workers=len(live),
                  calls=sum(x.legs for x in live))
        for slot in live:
            self._drain(slot)
        deadline = time.monotonic() + self.settings.worker.drain_timeout_s + 15
        while any(x.state is not SlotState.EMPTY for x in self.slots):
            if time.monotonic() > deadline:
                for slot in self.slots:
                    if slot.pid and slot.state is not SlotState.EMPTY:
                        log.error("worker %s did not stop; killing it", slot.name)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(slot.pid, signal.SIGKILL)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the last exit reports in
        if self._front is not None:
            await self._front.stop()
        await self._stop_zygote()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.flush_store()
        if self.store is not None:
            self.store.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log_event("controller.stopped")

    # -- zygote ----------------------------------------------------------------------------

    async def _start_zygote(self) -> None:
        env = dict(os.environ)
        self._zygote = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.zygote", str(self.socket_path),
            env=env, start_new_session=True,
        )
        waiter = asyncio.ensure_future(self._zygote_ready.wait())
        died = asyncio.ensure_future(self._zygote.wait())
        done, _ = await asyncio.wait({waiter, died}, timeout=60,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        died.cancel()
        if not self._zygote_ready.is_set():
            rc = self._zygote.returncode
            raise ControllerError(
                f"the worker zygote did not start (exit code {rc}); see the log above")

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
            with contextlib.suppress(ProcessLookupError):
                self._zygote.kill()
            await self._zygote.wait()

    def _spawn(self, slot: WorkerSlot) -> None:
        if self._zygote_writer is None:
            raise ControllerError("no zygote to fork workers from")
        pool = self.settings.pool
        slot.state = SlotState.STARTING
        slot.legs = 0
        slot.pid = None
        slot.exit_seen = asyncio.Event()
        slot.exit_info = ""
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
            serving = [x.uri for x in self.slots if x.state is SlotState.SERVING]
            self._front = await start_front(self.settings, [x.uri for x in self.slots],
                                            self.settings.worker.max_calls, serving)
        except FrontError as exc:
            raise ControllerError(str(exc)) from exc

    # -- connections -------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        slot: WorkerSlot | None = None
        try:
            line = await reader.readline()
            if not line:
                return
            hello = decode(line)
            if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL_VERSION:
                raise ProtocolError(f"expected hello with protocol {PROTOCOL_VERSION}")
            if hello.get("role") == "zygote":
                await self._serve_zygote(reader, writer)
                return
            slot = self._slot_of(hello)
            slot.writer = writer
            slot.pid = int(hello["pid"])
            slot.max_calls = int(hello.get("max_calls", 4))
            if slot.state is SlotState.STARTING:
                slot.state = SlotState.SERVING
                if self._front is not None:
                    self._background(self._front.worker_up(slot.uri))
            log_event("pool.worker_up", worker=slot.name, pid=slot.pid, sip=hello.get("sip"),
                      start_ms=round((time.monotonic() - slot.started_at) * 1000, 1))
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._on_worker_message(slot, decode(line))
        except ProtocolError as exc:
            log.error("closing a connection that broke the protocol: %s", exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if slot is not None:
                await self._worker_gone(slot)
            if task is not None:
                self._tasks.discard(task)

    def _slot_of(self, hello: dict[str, Any]) -> WorkerSlot:
        index = hello.get("slot")
        if not isinstance(index, int) or not 0 <= index < len(self.slots):
            raise ProtocolError(f"worker hello names no valid slot: {index!r}")
        return self.slots[index]

    async def _serve_zygote(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        self._zygote_writer = writer
        self._zygote_ready.set()
        while True:
            line = await reader.readline()
            if not line:
                break
            msg = decode(line)
            if msg["type"] == "spawned":
                slot = self.slots[int(msg["slot"])]
                slot.pid = int(msg["pid"])
            elif msg["type"] == "exited" and msg.get("slot") is not None:
                slot = self.slots[int(msg["slot"])]
                how = (f"killed by signal {msg['signal']}" if msg.get("signal")
                       else f"exit code {msg.get('exit_code')}")
                slot.exit_info = how
                slot.exit_seen.set()
                log_event("pool.worker_exit", worker=slot.name, pid=msg.get("pid"), how=how)
                if slot.writer is None and slot.state is not SlotState.EMPTY:
                    await self._worker_gone(slot)  # died before it said hello
        self._zygote_writer = None
        if not self._stopping:
            log.error("the worker zygote went away; no new workers can start")

    def _on_worker_message(self, slot: WorkerSlot, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "store":
            op, call_id, at, args = check_store_op(msg)
            self._queue_store((op, call_id, at, args))
            if op == "call_arrived":
                slot.open_calls.add(call_id)
            elif op == "call_ended":
                slot.open_calls.discard(call_id)
        elif kind == "stats":
            slot.legs = int(msg.get("legs", 0))
            self._keep_idle_ready()
        elif kind == "state":
            if msg.get("state") in ("draining", "stopping") and slot.state is SlotState.SERVING:
                slot.state = SlotState.DRAINING
        else:
            log.warning("unknown message %r from %s", kind, slot.name)

    async def _worker_gone(self, slot: WorkerSlot) -> None:
        if slot.state is SlotState.EMPTY:
            return
        was_draining = slot.state is SlotState.DRAINING
        slot.writer = None
        if self._front is not None and not self._stopping:
            self._background(self._front.worker_out(slot.uri, draining=False))
            self._background(self._front.end_calls_of(slot.uri))  # callers get a BYE
        # The exit report tells how it died; it follows the socket's end within moments.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot.exit_seen.wait(), 2.0)
        if slot.is_empty():  # handled meanwhile by the zygote's exit report
            return
        slot.state = SlotState.EMPTY
        how = slot.exit_info or "lost its controller link"
        if slot.open_calls:
            # After what the worker sent (queued before): a call it ended keeps its own end.
            for call_id in sorted(slot.open_calls):
                self._store_pending.append((
                    "call_ended", call_id, time.time(),
                    {"reason": "failure", "hangup_by": "system", "sip_code": None,
                     "sip_reason": f"worker {slot.name} {how}"}))
            self.flush_store()
            log_event("pool.calls_failed", worker=slot.name, calls=len(slot.open_calls),
                      how=how)
        slot.open_calls.clear()
        slot.legs = 0
        slot.pid = None
        if not self._stopping and not was_draining:
            slot.restarts += 1
            log_event("pool.worker_lost", worker=slot.name, how=how, restarts=slot.restarts)
            await asyncio.sleep(self.settings.pool.restart_delay_s)
            if not self._stopping and slot.state is SlotState.EMPTY:
                self._spawn(slot)
        elif not self._stopping:
            self._keep_idle_ready()

    # -- the call store ----------------------------------------------------------------------

    def _queue_store(self, op: StoreOp) -> None:
        """Queue one write from a worker; written with the others within store_batch_ms."""
        self._store_pending.append(op)
        delay_s = self.settings.pool.store_batch_ms / 1000
        if delay_s <= 0 or len(self._store_pending) >= _STORE_BATCH_MAX:
            self.flush_store()
        elif self._store_flush is None:
            self._store_flush = asyncio.get_running_loop().call_later(delay_s, self.flush_store)

    def flush_store(self) -> None:
        """Write every queued call event in one transaction."""
        if self._store_flush is not None:
            self._store_flush.cancel()
            self._store_flush = None
        ops, self._store_pending = self._store_pending, []
        if not ops or self.store is None:
            return
        try:
            failed = self.store.apply_batch(ops)
        except StoreError as exc:
            # Nothing of the batch was written: keep it for the next flush, in order.
            self._store_pending = ops + self._store_pending
            excess = len(self._store_pending) - _STORE_PENDING_MAX
            if excess > 0:
                del self._store_pending[:excess]
                log.error("call store unwritable; dropped the %d oldest call events", excess)
            log.error("could not write %d call events (kept for retry): %s", len(ops), exc)
            if self._store_flush is None and not self._stopping:
                self._store_flush = asyncio.get_running_loop().call_later(
                    1.0, self.flush_store)
            return
        for (method, call_id, _at, _args), err in failed:
            log.error("could not apply %s of call %s: %s", method, call_id, err)

    def _keep_idle_ready(self) -> None:
        if self._stopping or self._zygote_writer is None:
            return
        pool = self.settings.pool
        idle = sum(1 for x in self.slots
                   if x.state in (SlotState.SERVING, SlotState.STARTING) and x.legs == 0)
        for slot in self.slots:
            if idle >= pool.min_idle_workers:
                break
            if slot.state is SlotState.EMPTY:
                self._spawn(slot)
                idle += 1

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- figures -----------------------------------------------------------------------------

    def pool_stats(self) -> dict[str, Any]:
        live = [x for x in self.slots if x.state is not SlotState.EMPTY]
        return {
            "workers": len(live),
            "serving": sum(1 for x in live if x.state is SlotState.SERVING),
            "legs": sum(x.legs for x in live),
            "capacity": sum(x.max_calls for x in live if x.state is SlotState.SERVING),
            "restarts": sum(x.restarts for x in self.slots),
        }


def run_controller(settings: Settings) -> int:
    try:
        asyncio.run(Controller(settings).run())
    except ControllerError as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0
