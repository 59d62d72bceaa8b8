"""The controller: the call store, the pool of call workers, and the SIP front.

It never imports pjsua2. It starts the zygote (the warm parent, ``ivr/zygote.py``) and asks
it to fork workers, one per *slot*; slot ``i`` always listens on ``pool.worker_port_base + i``
so Kamailio's destination list never changes. It applies the call records the workers send
(``ivr/protocol.py``), tracks each worker's live legs, keeps ``pool.min_idle_workers`` idle
workers ready (up to ``pool.max_workers``), retires workers idle for ``pool.idle_retire_s``
beyond that (``ivr/pool_policy.py``), and replaces a worker that dies, closing its calls as
ended by failure. It also restarts the zygote and Kamailio if they die, and holds the var
dir's lock (``ivr/supervise.py``; docs/architecture.md, Supervision).

Its rooms: the pool (slots, zygote, front: ``ivr/controller_pool.py``), the ACD and the
operators' requests (``ivr/controller_acd.py``); this module keeps the life cycle, the
connections of its peers and the call store.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from .acd.queue_log import QueueLogRow
from .config import Settings
from .controller_acd import AcdStartError, ControllerAcd
from .controller_pool import ControllerError, PoolSupervision, SlotState, WorkerSlot
from .controller_speech import SpeechServiceRunner, flow_has_speech
from .front import Front
from .journal import SCAN_S, ReplayResult, replay_journals
from .logs import log_event
from .messages import is_message
from .peers import PeerCredentials, peer_credentials, refusal
from .pool_policy import SlotLoad, to_retire
from .protocol import PROTOCOL_VERSION, ProtocolError, check_store_op, decode, encode
from .store import BatchItem, CallStore, StoreError, StoreOp, StoreWriter
from .supervise import (
    StackLock,
    StackRunningError,
    StaleProcessError,
    controlling_terminal,
    replace_stale,
)

log = logging.getLogger("ivr.controller")

# Store writes waiting for their batch: handed to the writer thread early at this many; if
# the database stays unwritable, the writer keeps them for retry up to _STORE_PENDING_MAX
# (the oldest are dropped, with an error).
_STORE_BATCH_MAX = 2000
_STORE_PENDING_MAX = 200_000
_STORE_CLOSE_WAIT_S = 30.0  # at shutdown, how long an unwritable store is waited for


class Controller(PoolSupervision):
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
        self.store: CallStore | None = None  # the loop's own connection: start-up and reads
        self.store_writer: StoreWriter | None = None  # every write once started (a thread)
        self._zygote: asyncio.subprocess.Process | None = None
        self._zygote_writer: asyncio.StreamWriter | None = None
        self._zygote_ready = asyncio.Event()
        self._zygote_restarts = 0
        self._terminal = controlling_terminal()  # started from one (make run)?
        self._front_restarts = 0
        self._stop = asyncio.Event()
        self._stopping = False
        self._server: asyncio.AbstractServer | None = None
        self._front: Front | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._store_pending: list[BatchItem] = []
        self._store_flush: asyncio.TimerHandle | None = None
        self._journals_scanned_at = time.monotonic()
        self.acd: ControllerAcd | None = None
        self._api: Any = None  # ivr.api.ApiServer, when http.enabled
        self._speech: SpeechServiceRunner | None = None  # when the flow has speech menus

    # -- life cycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            # Still handled while stopping: the default action would kill the controller at
            # once, leaving Kamailio and the pool with nobody in charge.
            log_event("controller.signal", signal=sig.name,
                      action="ignored: already stopping (calls drain for up to "
                             f"{self.settings.worker.drain_timeout_s:g} s)")
            return
        log_event("controller.signal", signal=sig.name, action="stop")
        self.request_stop()

    def _on_hangup(self) -> None:
        if self._stop.is_set():
            log_event("controller.signal", signal="SIGHUP", action="ignored: stopping")
            return
        if self._terminal is not None and controlling_terminal() is None:
            # Our terminal closed (not `ivr reload`): nobody watches this stack any more.
            log_event("controller.signal", signal="SIGHUP",
                      action=f"stop: the terminal {self._terminal} is gone")
            self.request_stop()
            return
        log_event("controller.signal", signal="SIGHUP", action="reload")
        self._background(self.reload())

    async def start(self) -> None:
        s = self.settings
        # The caller holds the var dir's lock: no other controller runs here. Processes a dead
        # one left behind are ended first (they hold the ports and the store's open calls).
        try:
            await asyncio.to_thread(replace_stale, s.run_dir, s.worker.drain_timeout_s,
                                    log_event)
        except StaleProcessError as exc:
            raise ControllerError(str(exc)) from exc
        try:
            self.store = CallStore(s.db_path)
        except StoreError as exc:
            raise ControllerError(str(exc)) from exc
        self._replay_journals()  # the workers' own account first: orphans are presumed
        closed = self.store.close_orphans(time.time(), "failure")
        if closed:
            log_event("controller.orphans_closed", calls=len(closed))
        self.store_writer = StoreWriter(s.db_path, batch_max=_STORE_BATCH_MAX,
                                        pending_max=_STORE_PENDING_MAX)
        try:
            await asyncio.to_thread(self.store_writer.start)  # opens its own connection
        except StoreError as exc:
            self.store_writer = None
            raise ControllerError(str(exc)) from exc
        try:
            self.acd = ControllerAcd(s, self.store, self.record_queue_log)
        except AcdStartError as exc:
            raise ControllerError(str(exc)) from exc
        self.acd.emergency.broadcast = self._to_every_worker
        self.acd.enable_callbacks(self._free_worker)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._on_connection, path=str(self.socket_path), limit=1 << 20)
        if await asyncio.to_thread(flow_has_speech, s):
            self._speech = SpeechServiceRunner(s)
            await self._speech.start()
        await self._start_zygote()
        for slot in self.slots[: s.pool.workers]:
            self._spawn(slot)
        await self._wait_serving(s.pool.workers, timeout_s=30.0)
        if s.front.enabled:
            await self._start_front()
        if s.http.enabled and self.acd is not None:
            await self._start_api(self.acd)
        log_event("controller.ready", sip=f"{s.sip.bind_address}:{s.sip.port}",
                  workers=sum(1 for x in self.slots if x.state is SlotState.SERVING),
                  max_workers=s.pool.max_workers, legs_per_worker=s.worker.max_calls,
                  front="kamailio" if s.front.enabled else "none", pid=os.getpid())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        try:
            await self.start()
            self.pid_path.write_text(f"{os.getpid()}\n")
            await self._stop.wait()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
            # The handlers stay until everything is stopped (see _on_stop_signal).
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def reload(self) -> bool:
        """Vet the flow and prompt sets; if all is well, have the zygote and every worker
        take them for new calls (running calls finish on what they began with)."""
        from .flowset import FlowSetError, load_flow_and_prompts

        try:
            flow, sets = await asyncio.to_thread(load_flow_and_prompts, self.settings)
        except FlowSetError as exc:
            log_event("flow.reload_refused", error=str(exc))
            return False
        if self.acd is not None and not await self.acd.reload():
            return False
        if self._zygote_writer is not None:
            self._zygote_writer.write(encode("reload"))
        workers = 0
        for slot in self.slots:
            if slot.writer is not None and slot.state is not SlotState.EMPTY:
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
        if self.acd is not None:
            self.acd.close()
        if self._api is not None:
            await self._api.stop()
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
        if self._speech is not None:
            await self._speech.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.flush_store()
        if self.store_writer is not None:  # waits for the thread to write what is queued
            await asyncio.to_thread(self.store_writer.close, _STORE_CLOSE_WAIT_S)
            self.store_writer = None
        if self.store is not None:
            self.store.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log_event("controller.stopped")

    async def _start_api(self, acd: ControllerAcd) -> None:
        from .api import ApiServer, ApiServerError, make_app

        s = self.settings
        server = ApiServer(make_app(acd.desk, token_ttl_s=s.http.token_ttl_s),
                           s.http_bind_address, s.http.port)
        try:
            await server.start()
        except ApiServerError as exc:
            raise ControllerError(str(exc)) from exc
        self._api = server
        log_event("api.ready", url=server.url)

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
            peer = peer_credentials(writer)
            if hello.get("role") == "cli":
                if peer is None or peer.uid not in (os.getuid(), 0):
                    self._refuse(hello, peer, "a cli peer must be the stack's user or root")
                    return
                if self.acd is not None:
                    await self.acd.serve_cli(reader, writer)
                return
            if hello.get("role") == "zygote":
                why = refusal(hello, peer, zygote_pid=self._zygote.pid if self._zygote else None,
                              zygote_connected=self._zygote_writer is not None, worker_pid=None)
                if why is None:
                    await self._serve_zygote(reader, writer)
                else:
                    self._refuse(hello, peer, why)
                return
            claimed = self._slot_of(hello)
            if claimed.state is SlotState.STARTING and not claimed.spawned.is_set():
                # The zygote's `spawned` report and the child's hello race on two sockets.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(claimed.spawned.wait(), 5.0)
            why = refusal(hello, peer, zygote_pid=None, zygote_connected=False,
                          worker_pid=claimed.pid if claimed.state is SlotState.STARTING
                          and claimed.writer is None else None)
            if why is not None:
                self._refuse(hello, peer, why)
                return
            slot = claimed
            slot.writer = writer
            slot.max_calls = int(hello.get("max_calls", 4))
            if slot.state is SlotState.STARTING:
                slot.state = SlotState.SERVING
                slot.idle_since = time.monotonic()
                if self._front is not None:
                    self._background(self._front.worker_up(slot.uri))
            if self.acd is not None and self.acd.emergency.board.on:
                writer.write(self.acd.emergency.state_line())  # storm mode, if on
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

    def _refuse(self, hello: dict[str, Any], peer: PeerCredentials | None, why: str) -> None:
        """One line for a peer that is not ours; nothing it sent is applied."""
        log_event("controller.peer_refused", role=hello.get("role"), slot=hello.get("slot"),
                  pid=peer.pid if peer else None, uid=peer.uid if peer else None, why=why)

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
                slot.spawned.set()
            elif msg["type"] == "exited" and msg.get("slot") is not None:
                slot = self.slots[int(msg["slot"])]
                how = (f"killed by signal {msg['signal']}" if msg.get("signal")
                       else f"exit code {msg.get('exit_code')}")
                slot.exit_info = how
                slot.exit_seen.set()
                log_event("pool.worker_exit", worker=slot.name, pid=msg.get("pid"), how=how)
                if slot.writer is None and slot.state is not SlotState.EMPTY:
                    await self._worker_gone(slot)  # died before it said hello
        if self._zygote_writer is writer:  # not the next zygote's
            self._zygote_writer = None

    def _free_worker(self) -> WorkerSlot | None:
        """The serving worker with the fewest legs up: it places a queued callback."""
        serving = [x for x in self.slots if x.state is SlotState.SERVING and x.writer]
        return min(serving, key=lambda x: x.legs) if serving else None

    def _to_every_worker(self, line: bytes) -> None:
        for slot in self.slots:
            if slot.writer is not None and slot.state is not SlotState.EMPTY:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    slot.writer.write(line)

    def _on_worker_message(self, slot: WorkerSlot, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "store":
            op, call_id, at, args = check_store_op(msg)
            self._queue_store((op, call_id, at, args))
            if op == "call_arrived":
                slot.open_calls.add(call_id)
                if self.acd is not None:
                    self.acd.call_arrived(call_id, slot)
            elif op == "call_ended":
                slot.open_calls.discard(call_id)
                if self.acd is not None:
                    self.acd.call_ended(call_id)
        elif is_message(msg):
            if self.acd is not None:
                self.acd.on_message(slot, msg)
        elif kind == "stats":
            slot.legs = int(msg.get("legs", 0))
            if slot.legs:
                slot.idle_since = None
            elif slot.idle_since is None:
                slot.idle_since = time.monotonic()
            self._keep_idle_ready()
            if time.monotonic() - self._journals_scanned_at >= SCAN_S:
                self._replay_journals()
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
        # The exit report tells how it died; it follows the socket's end within moments
        # (unless the zygote that forked it is gone).
        if not slot.orphaned:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.exit_seen.wait(), 2.0)
        if slot.is_empty():  # handled meanwhile by the zygote's exit report
            return
        slot.state = SlotState.EMPTY
        how = slot.exit_info or ("exited (its zygote had died: status unknown)"
                                 if slot.orphaned else "lost its controller link")
        slot.orphaned = False
        if self.acd is not None:
            self.acd.worker_gone(slot.open_calls, slot)
        if slot.open_calls:
            # After what the worker sent (queued before): a call it ended keeps its own end.
            for call_id in sorted(slot.open_calls):
                self._store_pending.append((
                    "call_ended", call_id, time.time(),
                    {"reason": "failure", "hangup_by": "system", "sip_code": None,
                     "sip_reason": f"worker {slot.name} {how}", "presumed": True}))
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
        self._store_soon()

    def record_queue_log(self, rows: Iterable[QueueLogRow]) -> None:
        """Queue the ACD's queue-log rows; written in order with the workers' records (a
        row after the records that came before it), within store_batch_ms."""
        self._store_pending.extend(rows)
        self._store_soon()

    def _store_soon(self) -> None:
        delay_s = self.settings.pool.store_batch_ms / 1000
        if delay_s <= 0 or len(self._store_pending) >= _STORE_BATCH_MAX:
            self.flush_store()
        elif self._store_flush is None:
            self._store_flush = asyncio.get_running_loop().call_later(delay_s, self.flush_store)

    def flush_store(self) -> None:
        """Hand every queued record to the writer thread, which writes them in one
        transaction, in order after what it was given before (so what a dead worker sent
        is written before its calls are closed). Returns at once: the loop never waits for
        SQLite. A batch the store cannot take is retried by the writer (ivr/store/writer.py).
        """
        if self._store_flush is not None:
            self._store_flush.cancel()
            self._store_flush = None
        if not self._store_pending or self.store_writer is None:
            return
        items, self._store_pending = self._store_pending, []
        self.store_writer.submit_batch(items)

    def _replay_journals(self) -> None:
        """Apply the journals of workers that lost their controller (``ivr/journal.py``):
        at start on the loop's connection (before orphans are closed), then in the writer's
        thread after what live workers sent."""
        self._journals_scanned_at = time.monotonic()
        directory = self.settings.journal_dir
        if self.store_writer is None:
            store = self.store
            if store is not None:
                self._log_replay(lambda: replay_journals(store, directory))
            return
        self.flush_store()  # what live workers sent comes first
        future = self.store_writer.call(lambda store: replay_journals(store, directory))
        future.add_done_callback(lambda f: self._log_replay(f.result))

    def _log_replay(self, replay: Callable[[], ReplayResult]) -> None:
        try:
            done = replay()
        except StoreError as exc:
            log.error("could not apply the workers' journals (kept for retry): %s", exc)
            return
        if done.applied or done.failed:
            log_event("controller.journals_applied", journals=done.journals,
                      applied=done.applied, already_stored=done.skipped, failed=done.failed)

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
        self._retire_idle(time.monotonic())

    def _retire_idle(self, now: float) -> None:
        """Drain workers idle for pool.idle_retire_s beyond the floor (ivr/pool_policy.py);
        their slots stay empty until the pool grows again."""
        pool = self.settings.pool
        live = [SlotLoad(x.slot, x.state is SlotState.SERVING, max(x.legs, len(x.open_calls)),
                         x.idle_since)
                for x in self.slots if x.state in (SlotState.SERVING, SlotState.STARTING)]
        for index in to_retire(live, now, floor_workers=pool.workers,
                               min_idle_workers=pool.min_idle_workers,
                               idle_retire_s=pool.idle_retire_s):
            slot = self.slots[index]
            idle_s = now - slot.idle_since if slot.idle_since is not None else 0.0
            log_event("pool.worker_retired", worker=slot.name, slot=slot.slot, pid=slot.pid,
                      idle_s=round(idle_s, 1), workers=len(live) - 1)
            live = [x for x in live if x.slot != index]
            self._drain(slot)

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
    """``ivr run``: take the var dir's lock (or refuse: another stack runs there), then run
    the controller until it is stopped. Its last line says how it ended, whatever the end."""
    faulthandler.enable()  # a crash in C code prints its Python stack to stderr
    lock = StackLock(settings.run_dir)
    try:
        lock.acquire()
    except StackRunningError as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ivr: cannot start: {lock.path}: {exc}", file=sys.stderr)
        return 2
    code = 1
    try:
        asyncio.run(Controller(settings).run())
        code = 0
    except ControllerError as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        code = 2
    except BaseException as exc:
        log.critical("the controller failed: %r", exc, exc_info=True)
        raise
    finally:
        log_event("controller.exit", code=code, pid=os.getpid())
        lock.release()
    return code
