"""The controller's store writes, off its event loop: one thread, one connection, a FIFO.

The event loop only appends to the FIFO (:meth:`StoreWriter.submit`,
:meth:`~StoreWriter.submit_queue_log`, :meth:`~StoreWriter.call`) and goes on; the thread
writes. So a slow disk, a checkpoint, or another process holding the database's write lock
(Kamailio inserting refused calls, ``ivr agent add``) delays the records, never the calls.

::

    loop ──submit(ops)──────────┐
    loop ──submit_queue_log(rows)┤   FIFO (one order for every kind of job)
    loop ──call(fn) / read(fn)──┘        │
                                         ▼
    thread: take what is queued, up to batch_max records ──▶ one transaction
            ok ──▶ next;  StoreError (locked, disk full) ──▶ put back at the head, wait
            retry_s, again (new records queue behind; beyond pending_max the oldest are
            dropped, with an error)
            a call job ──▶ fn(store) in the thread, after every write queued before it

Order is kept across every kind of job: records of one call are written in the order sent,
a dead worker's records before the presumed end of its calls, a journal replay
(``call``) after what live workers sent before it. :meth:`flush` (shutdown) and
:meth:`drain` (async) wait until what was queued before them is written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ..acd.queue_log import QueueLogRow
from .calls import CallStore
from .records import BatchItem, StoreError, StoreOp
from .sql import Adapter

log = logging.getLogger("ivr.store")

T = TypeVar("T")

BATCH_MAX = 2000  # records per transaction
PENDING_MAX = 200_000  # records kept for retry while the store is unwritable
RETRY_S = 1.0  # a batch that could not be committed is tried again this much later


class _Call:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[CallStore], Any]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class StoreWriter:
    """Writes the store from its own thread. ``start`` opens the connection (StoreError if
    it cannot) and starts the thread; ``close`` writes what is queued and stops it."""

    def __init__(self, path: Path, *, adapter: Adapter | None = None,
                 batch_max: int = BATCH_MAX, pending_max: int = PENDING_MAX,
                 retry_s: float = RETRY_S) -> None:
        self.path = path
        self.batch_max = batch_max
        self.pending_max = pending_max
        self.retry_s = retry_s
        self._adapter = adapter
        self._store: CallStore | None = None
        self._jobs: deque[BatchItem | _Call] = deque()
        self._records = 0  # records (not call jobs) in _jobs or being written
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.failed_commits = 0  # batches that could not be committed (and were retried)
        self.dropped = 0  # records given up on: beyond pending_max, or unwritten at close

    # -- the loop's side: return at once -------------------------------------------------

    def start(self) -> None:
        self._store = CallStore(self.path, self._adapter)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, ops: Iterable[StoreOp]) -> None:
        """Recorder calls ``(method, call_id, at, kwargs)``, written in order."""
        self._put(list(ops))

    def submit_queue_log(self, rows: Iterable[QueueLogRow]) -> None:
        """Queue-log rows, appended in order (after everything submitted before)."""
        self._put(list(rows))

    def submit_batch(self, items: Iterable[BatchItem]) -> None:
        """Recorder calls and queue-log rows mixed, in the order given."""
        self._put(list(items))

    def call(self, fn: Callable[[CallStore], T]) -> concurrent.futures.Future[T]:
        """Run ``fn(store)`` in the writer's thread once everything queued before is
        written (a journal replay, a read that must see those writes)."""
        job = _Call(fn)
        with self._cond:
            if self._closing:
                raise StoreError(f"{self.path}: the store writer is closed")
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    async def read(self, fn: Callable[[CallStore], T]) -> T:
        """``call`` for the event loop: awaits ``fn(store)`` without blocking the loop."""
        return await asyncio.wrap_future(self.call(fn))

    async def drain(self) -> None:
        """Wait (without blocking the loop) until what was queued before is written."""
        await self.read(lambda _store: None)

    @property
    def pending(self) -> int:
        """Records queued or being written."""
        with self._cond:
            return self._records

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until what was queued before is written; False if ``timeout_s`` passed
        first (the store is still unwritable: the records stay queued)."""
        if self._thread is None:
            return True
        try:
            self.call(lambda _store: None).result(timeout_s)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def close(self, timeout_s: float | None = 30.0) -> int:
        """Write what is queued (waiting up to ``timeout_s`` for an unwritable store), stop
        the thread, close the connection. Returns how many records were never written."""
        if self._thread is None:
            return 0
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()  # it ends after the write in progress, if any
        self._thread = None
        lost = self._records
        if lost:
            self.dropped += lost
            log.error("%s: the store stayed unwritable; %d call records were not written",
                      self.path, lost)
        if self._store is not None:
            self._store.close()
            self._store = None
        return lost

    def _put(self, items: list[BatchItem]) -> None:
        if not items:
            return
        with self._cond:
            if self._closing:
                raise StoreError(f"{self.path}: the store writer is closed")
            self._jobs.extend(items)
            self._records += len(items)
            self._cond.notify()

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        store = self._store
        assert store is not None
        backoff = False
        while True:
            with self._cond:
                if backoff:  # the last commit failed: wait retry_s (new jobs queue behind)
                    self._cond.wait_for(lambda: self._closing, self.retry_s)
                    backoff = False
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if self._closing:
                    self._fail_calls()
                    return
                head = self._jobs[0]
                if isinstance(head, _Call):
                    self._jobs.popleft()
                    batch: list[BatchItem] = []
                else:
                    batch = self._take()
            if isinstance(head, _Call):
                self._run_call(head, store)
            else:
                backoff = not self._write(batch, store)

    def _take(self) -> list[BatchItem]:
        batch: list[BatchItem] = []
        while self._jobs and len(batch) < self.batch_max and not isinstance(self._jobs[0], _Call):
            batch.append(self._jobs.popleft())  # type: ignore[arg-type]
        return batch

    def _write(self, batch: list[BatchItem], store: CallStore) -> bool:
        try:
            failed = store.apply_batch(batch)
        except StoreError as exc:
            self.failed_commits += 1
            with self._cond:  # nothing of it was written: back to the head, in order
                self._jobs.extendleft(reversed(batch))
                excess = self._records - self.pending_max
                if excess > 0:
                    self._drop_oldest(excess)
            log.error("could not write %d call records (kept for retry): %s", len(batch), exc)
            return False
        except Exception:  # a bug: the batch is lost, the writer goes on
            log.exception("the store writer failed on a batch of %d records", len(batch))
            failed = []
        with self._cond:
            self._records -= len(batch)
        for item, err in failed:
            if isinstance(item, QueueLogRow):
                log.error("could not append %s to the queue log: %s", item.event.name, err)
            else:
                log.error("could not apply %s of call %s: %s", item[0], item[1], err)
        return True

    def _drop_oldest(self, n: int) -> None:
        kept: deque[BatchItem | _Call] = deque()
        dropped = 0
        for job in self._jobs:
            if dropped < n and not isinstance(job, _Call):
                dropped += 1
                continue
            kept.append(job)
        self._jobs = kept
        self._records -= dropped
        self.dropped += dropped
        log.error("call store unwritable; dropped the %d oldest call records", dropped)

    def _run_call(self, job: _Call, store: CallStore) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn(store))
        except BaseException as exc:
            job.future.set_exception(exc)

    def _fail_calls(self) -> None:
        for job in self._jobs:
            if isinstance(job, _Call) and job.future.set_running_or_notify_cancel():
                job.future.set_exception(StoreError(f"{self.path}: the store writer closed"))
