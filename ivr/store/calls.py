"""The call store: one row per call (the CDR) and an append-only log of its events.

Embedded default: SQLite in WAL mode under ``var/`` (``sqlite.py``). A standalone worker
writes every event in its own transaction as it happens; the pool's controller hands what
its workers sent to its writer thread (``writer.py``), which applies it in one transaction
per batch (:meth:`CallStore.apply_batch`, at most ``pool.store_batch_ms`` late). A pooled
worker that lost its controller journals its records (``ivr/journal.py``), replayed
idempotently by :meth:`CallStore.replay`. A call whose end was never written is closed as a
*presumed* ``failure`` by :meth:`CallStore.close_orphans` at the next start; a worker's own
journaled end replaces a presumed one, never the reverse.
The statements are in ``sql.py`` (what PostgreSQL also accepts); the database's own part is
its adapter (``sqlite.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..acd.queue_log import QueueLogRow
from . import sql
from .acd import AcdRows, backfill_recordings, recording_params
from .agents import AgentRows
from .callbacks import CallbackRows
from .records import (
    RECORDER_METHODS,
    BatchItem,
    BlockedCall,
    CallEventRecord,
    CallRecord,
    ReplayOutcome,
    StoreError,
    StoreOp,
)
from .sql import Adapter
from .sqlite import SqliteAdapter


def _migrate(db: Any, old_version: int) -> None:
    """Data an older schema needs moved; the new tables themselves come from the DDL."""
    if 0 < old_version < 4:
        backfill_recordings(db)
    if old_version == 5:  # its emergencies table is older than the DDL's
        db.execute(sql.ADD_OFFER_CALLBACK)


class CallStore(AgentRows, AcdRows, CallbackRows):
    def __init__(self, path: Path, adapter: Adapter | None = None) -> None:
        self.path = path
        self._adapter = adapter or SqliteAdapter()
        self._in_batch = False
        self._replaying = False
        self._replay_skipped = 0
        self._db = self._adapter.open(path, _migrate)

    def apply_batch(self, items: Iterable[BatchItem]) -> list[tuple[BatchItem, StoreError]]:
        """Apply recorder calls ``(method, call_id, at, kwargs)`` and queue-log rows, in
        the order given, in one transaction.

        One commit for the lot costs a fraction of one per write (the controller applies
        what its workers sent in the last few milliseconds this way). A write that fails is
        undone alone and returned with its error; the others are kept. If the commit itself
        fails, StoreError is raised and nothing of the batch is stored.
        """
        failed: list[tuple[BatchItem, StoreError]] = []
        try:
            self._db.execute(self._adapter.begin)
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from exc
        self._in_batch = True
        try:
            rows: list[QueueLogRow] = []
            for item in items:
                if isinstance(item, QueueLogRow):
                    rows.append(item)
                    continue
                if rows:
                    failed += self._append_rows_alone(rows)
                    rows = []
                method, call_id, at, kwargs = item
                if method not in RECORDER_METHODS:
                    failed.append((item, StoreError(f"{method!r} is not a recorder method")))
                    continue
                try:
                    getattr(self, method)(call_id, at, **kwargs)
                except StoreError as exc:
                    failed.append((item, exc))
                except TypeError as exc:  # arguments that are not the method's
                    failed.append((item, StoreError(f"{method} of call {call_id}: {exc}")))
            if rows:
                failed += self._append_rows_alone(rows)
        except BaseException:
            self._in_batch = False
            self._db.execute("ROLLBACK")
            raise
        self._in_batch = False
        try:
            self._db.execute("COMMIT")
        except self._error as exc:
            try:
                self._db.execute("ROLLBACK")
            except self._error:
                pass
            raise StoreError(f"{self.path}: cannot commit {len(failed)} writes: {exc}") from exc
        return failed

    def _append_rows_alone(self, rows: list[QueueLogRow]) -> list[tuple[BatchItem, StoreError]]:
        """Queue-log rows in a batch: all in one savepoint, or, if that fails, one by one
        so that only the bad ones are left out."""
        try:
            self.append_queue_log(rows)
            return []
        except StoreError as exc:
            if len(rows) == 1:
                return [(rows[0], exc)]
        failed: list[tuple[BatchItem, StoreError]] = []
        for row in rows:
            try:
                self.append_queue_log([row])
            except StoreError as exc:
                failed.append((row, exc))
        return failed

    def replay(self, ops: Iterable[StoreOp]) -> ReplayOutcome:
        """Apply recorder calls a worker journaled, in one transaction, skipping each one
        already stored (the same event of the same call at the same time): replaying a
        journal twice, or records that did reach the store, changes nothing. A call's end
        replaces only an end the controller presumed (``presumed``), never a worker's own.
        Raises StoreError, with nothing written, if the commit fails."""
        listed = list(ops)
        self._replaying, self._replay_skipped = True, 0
        try:
            failed = self.apply_batch(listed)
        finally:
            self._replaying = False
        skipped = self._replay_skipped
        return ReplayOutcome(len(listed) - skipped - len(failed),
                             skipped, failed)  # type: ignore[arg-type]

    def _stored(self, call_id: str, at: float, kind: str, data: str) -> bool:
        return self._db.execute(sql.EVENT_STORED, (call_id, at, kind, data)).fetchone() is not None

    def _end_is_presumed(self, call_id: str) -> bool:
        row = self._db.execute(sql.LAST_END, (call_id,)).fetchone()
        return row is not None and json.loads(row[0]).get("presumed") is True

    def _write(self, call_id: str, at: float, kind: str, data: dict[str, Any],
               update_sql: str | None = None, params: tuple[Any, ...] = (),
               only_if_updated: bool = False) -> None:
        encoded = json.dumps(data, separators=(",", ":"))
        try:
            if self._replaying and self._stored(call_id, at, kind, encoded):
                self._replay_skipped += 1
                return
            with self._tx() as db:
                if update_sql:
                    if db.execute(update_sql, params).rowcount == 0 and only_if_updated:
                        return
                db.execute(sql.INSERT_EVENT, (call_id, at, kind, encoded))
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot record {kind} of call {call_id}: {exc}") from exc

    # -- the life of a call ------------------------------------------------------------

    def call_arrived(self, call_id: str, at: float, *, sip_call_id: str, worker: str,
                     from_uri: str, to_uri: str, flow: str, flow_version: int) -> None:
        self._write(
            call_id, at, "arrived",
            {"sip_call_id": sip_call_id, "from": from_uri, "to": to_uri, "worker": worker},
            sql.INSERT_CALL,
            (call_id, sip_call_id, worker, from_uri, to_uri, flow, flow_version, at),
        )

    def call_answered(self, call_id: str, at: float, *, codec: str, telephone_event: bool,
                      inband_dtmf: bool) -> None:
        self._write(
            call_id, at, "answered",
            {"codec": codec, "telephone_event": telephone_event, "inband_dtmf": inband_dtmf},
            sql.SET_ANSWERED, (at, codec, call_id),
        )

    def call_dtmf(self, call_id: str, at: float, *, digit: str, method: str, node: str) -> None:
        self._write(call_id, at, "dtmf", {"digit": digit, "method": method, "node": node},
                    sql.SET_DTMF, (method, call_id))

    def call_node(self, call_id: str, at: float, *, node: str, node_type: str) -> None:
        self._write(call_id, at, "node", {"node": node, "type": node_type},
                    sql.SET_NODE, (node, call_id))

    def call_menu_choice(self, call_id: str, at: float, *, node: str, key: str,
                         target: str) -> None:
        self._write(call_id, at, "menu.choice", {"node": node, "key": key, "target": target},
                    sql.ADD_MENU_CHOICE, (f"{node}:{key}", f"{node}:{key}", call_id))

    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, Any]) -> None:
        """A ``recording`` event also links its file to the call (``recordings``)."""
        if kind != "recording":
            self._write(call_id, at, kind, data)
            return
        try:
            params = recording_params(call_id, at, data)
        except ValueError as exc:
            raise StoreError(f"{self.path}: cannot record recording of call {call_id}: "
                             f"{exc}") from exc
        self._write(call_id, at, kind, data, sql.INSERT_RECORDING, params)

    def call_ended(self, call_id: str, at: float, *, reason: str, hangup_by: str,
                   sip_code: int | None, sip_reason: str | None,
                   presumed: bool = False) -> None:
        """``presumed``: written by the controller for a call whose worker's own account
        is missing (the worker died, or the program restarted); a journaled end from the
        worker replaces it (see :meth:`replay`)."""
        data: dict[str, Any] = {"reason": reason, "hangup_by": hangup_by,
                                "sip_code": sip_code, "sip_reason": sip_reason}
        if presumed:
            data["presumed"] = True
        open_only = sql.OPEN_ONLY
        try:
            if self._replaying and self._end_is_presumed(call_id):
                open_only = ""  # the worker's account replaces the controller's guess
        except (self._error, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read the end of call {call_id}: {exc}") from exc
        self._write(
            call_id, at, "ended", data, sql.SET_ENDED + open_only,
            (at, reason, hangup_by, sip_code, sip_reason, call_id),
            only_if_updated=True,  # a second end changes nothing and logs nothing
        )

    def close_orphans(self, at: float, reason: str, worker: str | None = None) -> list[str]:
        """Close calls whose end was never recorded (their process died)."""
        if worker is None:
            ids = [r[0] for r in self._db.execute(sql.OPEN_CALLS).fetchall()]
        else:
            ids = [r[0] for r in self._db.execute(sql.OPEN_CALLS_OF, (worker,)).fetchall()]
        for call_id in ids:
            self.call_ended(call_id, at, reason=reason, hangup_by="system",
                            sip_code=None, sip_reason=None, presumed=True)
        return ids

    # -- reading -----------------------------------------------------------------------

    def get_call(self, call_id: str) -> CallRecord | None:
        row = self._db.execute(sql.GET_CALL, (call_id,)).fetchone()
        return CallRecord(*row) if row else None

    def find_by_sip_call_id(self, sip_call_id: str) -> CallRecord | None:
        row = self._db.execute(sql.CALL_BY_SIP_ID, (sip_call_id,)).fetchone()
        return CallRecord(*row) if row else None

    def recent_calls(self, limit: int = 20) -> list[CallRecord]:
        return [CallRecord(*r) for r in self._db.execute(sql.RECENT_CALLS, (limit,)).fetchall()]

    def blocked_calls(self, limit: int = 20, since: float | None = None) -> list[BlockedCall]:
        """The most recent refused calls, newest first (only those at or after ``since``)."""
        if since is None:
            rows = self._db.execute(sql.BLOCKED, (limit,)).fetchall()
        else:
            rows = self._db.execute(sql.BLOCKED_SINCE, (since, limit)).fetchall()
        return [BlockedCall(*r) for r in rows]

    def blocked_counts(self, since: float | None = None) -> dict[str, int]:
        """Refused calls by reason (at or after ``since``)."""
        if since is None:
            return dict(self._db.execute(sql.BLOCKED_COUNTS).fetchall())
        return dict(self._db.execute(sql.BLOCKED_COUNTS_SINCE, (since,)).fetchall())

    def survey_scores(self, since: float) -> list[tuple[str, int]]:
        """(call id, score) of every survey answered at or after ``since``, in order (the
        flow's survey node notes ``survey`` with its ``score``)."""
        rows = self._db.execute(sql.EVENTS_OF_KIND_SINCE, ("survey", since)).fetchall()
        out: list[tuple[str, int]] = []
        for call_id, _, data in rows:
            score = json.loads(data).get("score")
            if isinstance(score, int):
                out.append((str(call_id), score))
        return out

    def events(self, call_id: str) -> list[CallEventRecord]:
        rows = self._db.execute(sql.CALL_EVENTS, (call_id,)).fetchall()
        return [CallEventRecord(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

