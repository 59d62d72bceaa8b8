"""Call records that outlive the controller link: the worker's journal and its replay.

A pooled worker sends its call records to the controller and gets no acknowledgement. When
the controller goes away, its workers rightly keep their calls going (they drain), so what
those calls did must still reach the store. A worker whose link is lost therefore writes its
store messages to a journal file, ``var/journal/<worker>-<pid>.jsonl`` (not under
``var/run/``, whose pid files and sockets a start may clear), one message a line in the wire
format of ``ivr/protocol.py``::

    {"type": "journal", "worker": "w003", "pid": 4711}      first line
    {"type": "store", "op": ..., "call_id": ..., "at": ..., "args": {...}}   in order
    {"type": "closed"}                                       the worker closed it

Records in flight when the link died (in the socket, or in the controller's unwritten batch)
are covered too: a worker keeps every record of its open calls, and of calls ended in the
last :data:`UNCONFIRMED_S`, and writes them all first when the link is lost. Some of them
did reach the store; replay is idempotent (``CallStore.replay`` skips what is there), so
writing too much is safe and writing too little is not.

The controller applies every journal at start, before it closes orphaned calls, and looks
again every :data:`SCAN_S` while it runs (a worker may finish its calls after the new
controller started). A journal is removed once applied if it is closed or its worker is gone.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .protocol import ProtocolError, check_store_op, decode, encode
from .store import CallStore, StoreOp

log = logging.getLogger("ivr.journal")

UNCONFIRMED_S = 10.0  # records of a call ended this recently may not have been written yet
SCAN_S = 5.0  # the controller looks for new journals this often


class UnconfirmedRecords:
    """The records a worker sent that the controller may not have written yet (pure)."""

    def __init__(self, retain_s: float = UNCONFIRMED_S) -> None:
        self.retain_s = retain_s
        self._seq = 0
        self._open: dict[str, list[tuple[int, StoreOp]]] = {}
        self._ended: deque[tuple[float, list[tuple[int, StoreOp]]]] = deque()

    def sent(self, op: StoreOp, now: float) -> None:
        self._seq += 1
        call_id = op[1]
        ops = self._open.setdefault(call_id, [])
        ops.append((self._seq, op))
        if op[0] == "call_ended":
            self._ended.append((now, self._open.pop(call_id)))
        self._expire(now)

    def all(self, now: float) -> list[StoreOp]:
        """Every record still unconfirmed, in the order sent."""
        self._expire(now)
        seqd = [x for ops in self._open.values() for x in ops]
        seqd += [x for _at, ops in self._ended for x in ops]
        return [op for _seq, op in sorted(seqd, key=lambda x: x[0])]

    def _expire(self, now: float) -> None:
        while self._ended and now - self._ended[0][0] > self.retain_s:
            self._ended.popleft()


def _line(op: StoreOp) -> bytes:
    method, call_id, at, args = op
    return encode("store", op=method, call_id=call_id, at=at, args=args)


class JournalWriter:
    """The worker's journal file: opened when the link is lost, fsync'd at each call end."""

    def __init__(self, directory: Path, worker: str, pid: int) -> None:
        self.path = directory / f"{worker}-{pid}.jsonl"
        self._worker = worker
        self._pid = pid
        self._file: IO[bytes] | None = None

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def open(self, first: Iterable[StoreOp]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._file.write(encode("journal", worker=self._worker, pid=self._pid))
        for op in first:
            self._file.write(_line(op))
        self._sync()

    def write(self, op: StoreOp) -> None:
        assert self._file is not None
        self._file.write(_line(op))
        if op[0] == "call_ended":
            self._sync()
        else:
            self._file.flush()  # in the kernel: survives our death, if not the machine's

    def close(self) -> None:
        if self._file is None:
            return
        self._file.write(encode("closed"))
        self._sync()
        self._file.close()
        self._file = None

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())


@dataclass(frozen=True)
class JournalRead:
    ops: list[StoreOp]
    pid: int | None
    closed: bool
    bad_lines: int


def read_journal(path: Path) -> JournalRead:
    """Parse one journal; a line that is not a valid message (the last one, cut short by a
    kill) is counted and skipped."""
    ops: list[StoreOp] = []
    pid: int | None = None
    closed = False
    bad = 0
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                bad += 1
                continue
            try:
                msg = decode(line)
                if msg["type"] == "store":
                    ops.append(check_store_op(msg))
                elif msg["type"] == "journal":
                    pid = msg.get("pid") if isinstance(msg.get("pid"), int) else None
                elif msg["type"] == "closed":
                    closed = True
                else:
                    raise ProtocolError(f"unknown journal line {msg['type']!r}")
            except ProtocolError as exc:
                bad += 1
                log.error("%s: skipped a bad line: %s", path, exc)
    return JournalRead(ops, pid, closed, bad)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ReplayResult:
    journals: int
    applied: int
    skipped: int
    failed: int


def replay_journals(store: CallStore, directory: Path) -> ReplayResult:
    """Apply every journal in ``directory`` to the store; remove those that are finished.

    Raises :class:`~ivr.store.StoreError` if the store cannot be written (the journal being
    applied is then kept, and nothing of it is written)."""
    journals = applied = skipped = failed = 0
    if not directory.is_dir():
        return ReplayResult(0, 0, 0, 0)
    for path in sorted(directory.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            read = read_journal(path)
        except OSError as exc:
            log.error("cannot read the journal %s: %s", path, exc)
            continue
        done = read.closed or not _alive(read.pid)
        result = store.replay(read.ops)
        journals += 1
        applied += result.applied
        skipped += result.skipped
        failed += len(result.failed)
        for (method, call_id, _at, _args), err in result.failed:
            log.error("journal %s: could not apply %s of call %s: %s", path.name, method,
                      call_id, err)
        if done:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    return ReplayResult(journals, applied, skipped, failed)

