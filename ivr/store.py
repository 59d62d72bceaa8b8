"""The call store: one row per call (the CDR) and an append-only log of its events.

Embedded default: SQLite in WAL mode under ``var/``. A standalone worker writes every event in
its own transaction as it happens; the pool's controller applies what its workers sent in one
transaction per batch (:meth:`CallStore.apply_batch`, at most ``pool.store_batch_ms`` late). A
pooled worker that lost its controller journals its records (``ivr/journal.py``), replayed
idempotently by :meth:`CallStore.replay`. A call whose end was never written is closed as a
*presumed* ``failure`` by :meth:`CallStore.close_orphans` at the next start; a worker's own
journaled end replaces a presumed one, never the reverse.
The SQL is kept to what PostgreSQL also accepts, so the same interface can move there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .agent_credentials import AgentError, AgentSip, format_queues, parse_queues

# 1: calls, call_events. 2: blocked_calls. 3: agents_sip (agents' digest hashes). A store
# of an older version gains the new tables when it is opened (CREATE TABLE IF NOT EXISTS).
SCHEMA_VERSION = 3

# Why the front refused a call (blocked_calls.reason); the SIP code it answered with.
BLOCK_REASONS = {
    "stack_full": "every worker is at its call limit (486)",
    "no_worker": "no worker is up (503)",
    "source_limit": "front.max_calls_per_source calls already up from that address (503)",
    "global_limit": "front.max_calls calls already up (503)",
    "flood": "the source is flooding and pike dropped the INVITE (no answer)",
    "not_allowed": "the caller is not in front.allowed_networks or failed authentication (403)",
}

# The CallRecorder methods, which apply_batch accepts by name.
RECORDER_METHODS = frozenset({
    "call_arrived", "call_answered", "call_dtmf", "call_node", "call_menu_choice",
    "call_event", "call_ended",
})
# (method, call_id, at, keyword arguments): one recorder call, as apply_batch takes it.
StoreOp = tuple[str, str, float, dict[str, Any]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id      TEXT PRIMARY KEY,
    sip_call_id  TEXT NOT NULL,
    worker       TEXT NOT NULL,
    from_uri     TEXT NOT NULL,
    to_uri       TEXT NOT NULL,
    flow         TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    arrived_at   REAL NOT NULL,
    answered_at  REAL,
    ended_at     REAL,
    codec        TEXT,
    dtmf_method  TEXT,
    last_node    TEXT,
    menu_path    TEXT NOT NULL DEFAULT '',
    end_reason   TEXT,
    hangup_by    TEXT,
    sip_code     INTEGER,
    sip_reason   TEXT
);
CREATE INDEX IF NOT EXISTS calls_arrived ON calls (arrived_at);
CREATE INDEX IF NOT EXISTS calls_open ON calls (ended_at) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS call_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS call_events_call ON call_events (call_id, id);
CREATE TABLE IF NOT EXISTS blocked_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    reason      TEXT NOT NULL,
    sip_code    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    from_uri    TEXT NOT NULL,
    to_uri      TEXT NOT NULL,
    sip_call_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blocked_calls_at ON blocked_calls (at);
CREATE TABLE IF NOT EXISTS agents_sip (
    agent_id     TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    realm        TEXT NOT NULL,
    ha1          TEXT NOT NULL,
    ha1b         TEXT NOT NULL,
    queues       TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
"""


class CallRecorder(Protocol):
    """What a call session writes: the store itself, or its proxy in a pooled worker."""

    def call_arrived(self, call_id: str, at: float, *, sip_call_id: str, worker: str,
                     from_uri: str, to_uri: str, flow: str, flow_version: int) -> None: ...
    def call_answered(self, call_id: str, at: float, *, codec: str, telephone_event: bool,
                      inband_dtmf: bool) -> None: ...
    def call_dtmf(self, call_id: str, at: float, *, digit: str, method: str,
                  node: str) -> None: ...
    def call_node(self, call_id: str, at: float, *, node: str, node_type: str) -> None: ...
    def call_menu_choice(self, call_id: str, at: float, *, node: str, key: str,
                         target: str) -> None: ...
    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, Any]) -> None: ...
    def call_ended(self, call_id: str, at: float, *, reason: str, hangup_by: str,
                   sip_code: int | None, sip_reason: str | None) -> None: ...


class StoreError(Exception):
    """The store cannot be opened or written; the message names the database file."""


@dataclass(frozen=True)
class ReplayOutcome:
    applied: int
    skipped: int  # already in the store
    failed: list[tuple[StoreOp, StoreError]]


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    sip_call_id: str
    worker: str
    from_uri: str
    to_uri: str
    flow: str
    flow_version: int
    arrived_at: float
    answered_at: float | None
    ended_at: float | None
    codec: str | None
    dtmf_method: str | None
    last_node: str | None
    menu_path: str
    end_reason: str | None
    hangup_by: str | None
    sip_code: int | None
    sip_reason: str | None


@dataclass(frozen=True)
class BlockedCall:
    """A call the SIP front refused (written by Kamailio itself, see docs/kamailio.md).
    ``sip_code`` 0: dropped without an answer (a flood)."""

    at: float
    reason: str
    sip_code: int
    source: str
    from_uri: str
    to_uri: str
    sip_call_id: str


@dataclass(frozen=True)
class CallEventRecord:
    call_id: str
    at: float
    kind: str
    data: dict[str, Any]


STORE_FILE_MODE = 0o600  # callers' numbers and the digits they entered


def _make_private(path: Path) -> None:
    """Create the database file for this user only, before SQLite does (it would use
    0644); SQLite gives the -wal and -shm files the database's mode. Files an older
    version made world-readable are tightened."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, STORE_FILE_MODE))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if name.stat().st_mode & 0o077:
                os.chmod(name, STORE_FILE_MODE)


class CallStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._in_batch = False
        self._replaying = False
        self._replay_skipped = 0
        try:
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            _make_private(path)
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: schema version {version} is newer than this program "
                    f"({SCHEMA_VERSION}); upgrade the program"
                )
            with self._tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the call store: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._in_batch:  # one savepoint per write: a failed write undoes only itself
            self._db.execute("SAVEPOINT write")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK TO write")
                self._db.execute("RELEASE write")
                raise
            else:
                self._db.execute("RELEASE write")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def apply_batch(self, ops: Iterable[StoreOp]) -> list[tuple[StoreOp, StoreError]]:
        """Apply recorder calls ``(method, call_id, at, kwargs)`` in one transaction.

        One commit for the lot costs a fraction of one per write (the controller applies
        what its workers sent in the last few milliseconds this way). A write that fails is
        undone alone and returned with its error; the others are kept. If the commit itself
        fails, StoreError is raised and nothing of the batch is stored.
        """
        failed: list[tuple[StoreOp, StoreError]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from exc
        self._in_batch = True
        try:
            for op in ops:
                method, call_id, at, kwargs = op
                if method not in RECORDER_METHODS:
                    failed.append((op, StoreError(f"{method!r} is not a recorder method")))
                    continue
                try:
                    getattr(self, method)(call_id, at, **kwargs)
                except StoreError as exc:
                    failed.append((op, exc))
        except BaseException:
            self._in_batch = False
            self._db.execute("ROLLBACK")
            raise
        self._in_batch = False
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot commit {len(failed)} writes: {exc}") from exc
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
        return ReplayOutcome(len(listed) - skipped - len(failed), skipped, failed)

    def _stored(self, call_id: str, at: float, kind: str, data: str) -> bool:
        return self._db.execute(
            "SELECT 1 FROM call_events WHERE call_id = ? AND at = ? AND kind = ? AND data = ?",
            (call_id, at, kind, data)).fetchone() is not None

    def _end_is_presumed(self, call_id: str) -> bool:
        row = self._db.execute(
            "SELECT data FROM call_events WHERE call_id = ? AND kind = 'ended' "
            "ORDER BY id DESC LIMIT 1", (call_id,)).fetchone()
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
                db.execute(
                    "INSERT INTO call_events (call_id, at, kind, data) VALUES (?, ?, ?, ?)",
                    (call_id, at, kind, encoded),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record {kind} of call {call_id}: {exc}") from exc

    # -- the life of a call ------------------------------------------------------------

    def call_arrived(self, call_id: str, at: float, *, sip_call_id: str, worker: str,
                     from_uri: str, to_uri: str, flow: str, flow_version: int) -> None:
        self._write(
            call_id, at, "arrived",
            {"sip_call_id": sip_call_id, "from": from_uri, "to": to_uri, "worker": worker},
            "INSERT INTO calls (call_id, sip_call_id, worker, from_uri, to_uri, flow,"
            " flow_version, arrived_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, sip_call_id, worker, from_uri, to_uri, flow, flow_version, at),
        )

    def call_answered(self, call_id: str, at: float, *, codec: str, telephone_event: bool,
                      inband_dtmf: bool) -> None:
        self._write(
            call_id, at, "answered",
            {"codec": codec, "telephone_event": telephone_event, "inband_dtmf": inband_dtmf},
            "UPDATE calls SET answered_at = ?, codec = ? WHERE call_id = ?",
            (at, codec, call_id),
        )

    def call_dtmf(self, call_id: str, at: float, *, digit: str, method: str, node: str) -> None:
        self._write(
            call_id, at, "dtmf", {"digit": digit, "method": method, "node": node},
            "UPDATE calls SET dtmf_method = ? WHERE call_id = ?", (method, call_id),
        )

    def call_node(self, call_id: str, at: float, *, node: str, node_type: str) -> None:
        self._write(
            call_id, at, "node", {"node": node, "type": node_type},
            "UPDATE calls SET last_node = ? WHERE call_id = ?", (node, call_id),
        )

    def call_menu_choice(self, call_id: str, at: float, *, node: str, key: str,
                         target: str) -> None:
        self._write(
            call_id, at, "menu.choice", {"node": node, "key": key, "target": target},
            "UPDATE calls SET menu_path = CASE WHEN menu_path = '' THEN ? "
            "ELSE menu_path || ' ' || ? END WHERE call_id = ?",
            (f"{node}:{key}", f"{node}:{key}", call_id),
        )

    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, Any]) -> None:
        self._write(call_id, at, kind, data)

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
        open_only = " AND ended_at IS NULL"
        try:
            if self._replaying and self._end_is_presumed(call_id):
                open_only = ""  # the worker's account replaces the controller's guess
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read the end of call {call_id}: {exc}") from exc
        self._write(
            call_id, at, "ended", data,
            "UPDATE calls SET ended_at = ?, end_reason = ?, hangup_by = ?, sip_code = ?,"
            f" sip_reason = ? WHERE call_id = ?{open_only}",
            (at, reason, hangup_by, sip_code, sip_reason, call_id),
            only_if_updated=True,  # a second end changes nothing and logs nothing
        )

    def close_orphans(self, at: float, reason: str, worker: str | None = None) -> list[str]:
        """Close calls whose end was never recorded (their process died)."""
        sql = "SELECT call_id FROM calls WHERE ended_at IS NULL"
        params: tuple[Any, ...] = ()
        if worker is not None:
            sql += " AND worker = ?"
            params = (worker,)
        ids = [r[0] for r in self._db.execute(sql, params).fetchall()]
        for call_id in ids:
            self.call_ended(call_id, at, reason=reason, hangup_by="system",
                            sip_code=None, sip_reason=None, presumed=True)
        return ids

    # -- reading -----------------------------------------------------------------------

    def get_call(self, call_id: str) -> CallRecord | None:
        row = self._db.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?", (call_id,)
        ).fetchone()
        return CallRecord(*row) if row else None

    def find_by_sip_call_id(self, sip_call_id: str) -> CallRecord | None:
        row = self._db.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE sip_call_id = ? "
            "ORDER BY arrived_at DESC LIMIT 1",
            (sip_call_id,),
        ).fetchone()
        return CallRecord(*row) if row else None

    def recent_calls(self, limit: int = 20) -> list[CallRecord]:
        rows = self._db.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY arrived_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [CallRecord(*r) for r in rows]

    def blocked_calls(self, limit: int = 20, since: float | None = None) -> list[BlockedCall]:
        """The most recent refused calls, newest first (only those at or after ``since``)."""
        sql = f"SELECT {_BLOCKED_COLUMNS} FROM blocked_calls"
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE at >= ?"
            params = (since,)
        rows = self._db.execute(sql + " ORDER BY at DESC, id DESC LIMIT ?",
                                (*params, limit)).fetchall()
        return [BlockedCall(*r) for r in rows]

    def blocked_counts(self, since: float | None = None) -> dict[str, int]:
        """Refused calls by reason (at or after ``since``)."""
        sql = "SELECT reason, COUNT(*) FROM blocked_calls"
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE at >= ?"
            params = (since,)
        return dict(self._db.execute(sql + " GROUP BY reason", params).fetchall())

    # -- agents' SIP credentials (hashes only; see ivr/agent_credentials.py) -------------

    def add_agent_sip(self, agent: AgentSip) -> None:
        """Raises AgentError if the id is taken (nothing written)."""
        try:
            with self._tx() as db:
                if db.execute("SELECT 1 FROM agents_sip WHERE agent_id = ?",
                              (agent.agent_id,)).fetchone():
                    raise AgentError(f"agent {agent.agent_id!r} exists already "
                                     "(ivr agent passwd changes its password)")
                db.execute(
                    f"INSERT INTO agents_sip ({_AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (agent.agent_id, agent.display_name, agent.realm, agent.ha1, agent.ha1b,
                     format_queues(agent.queues), agent.created_at, agent.updated_at))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot add agent {agent.agent_id}: {exc}") from exc

    def set_agent_sip_hashes(self, agent_id: str, realm: str, ha1: str, ha1b: str,
                             at: float) -> None:
        """A new password's hashes. Raises AgentError for an unknown agent."""
        try:
            with self._tx() as db:
                n = db.execute("UPDATE agents_sip SET realm = ?, ha1 = ?, ha1b = ?, "
                               "updated_at = ? WHERE agent_id = ?",
                               (realm, ha1, ha1b, at, agent_id)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot change agent {agent_id}: {exc}") from exc
        if n == 0:
            raise AgentError(f"no agent {agent_id!r}")

    def remove_agent_sip(self, agent_id: str) -> None:
        """Raises AgentError for an unknown agent. A phone registered with the old
        credentials keeps its binding at the front until it expires or re-registers."""
        try:
            with self._tx() as db:
                n = db.execute("DELETE FROM agents_sip WHERE agent_id = ?",
                               (agent_id,)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot remove agent {agent_id}: {exc}") from exc
        if n == 0:
            raise AgentError(f"no agent {agent_id!r}")

    def agents_sip(self) -> list[AgentSip]:
        rows = self._db.execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents_sip ORDER BY agent_id").fetchall()
        return [_agent_from_row(r) for r in rows]

    def agent_sip(self, agent_id: str) -> AgentSip | None:
        row = self._db.execute(f"SELECT {_AGENT_COLUMNS} FROM agents_sip WHERE agent_id = ?",
                               (agent_id,)).fetchone()
        return _agent_from_row(row) if row else None

    def events(self, call_id: str) -> list[CallEventRecord]:
        rows = self._db.execute(
            "SELECT call_id, at, kind, data FROM call_events WHERE call_id = ? ORDER BY id",
            (call_id,),
        ).fetchall()
        return [CallEventRecord(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


_CALL_COLUMNS = ", ".join(CallRecord.__dataclass_fields__)
_BLOCKED_COLUMNS = ", ".join(BlockedCall.__dataclass_fields__)

_AGENT_COLUMNS = ", ".join(AgentSip.__dataclass_fields__)


def _agent_from_row(row: tuple[Any, ...]) -> AgentSip:
    agent_id, name, realm, ha1, ha1b, queues, created, updated = row
    return AgentSip(agent_id, name, realm, ha1, ha1b, parse_queues(queues), created, updated)
