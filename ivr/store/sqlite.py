"""The SQLite adapter: the file, its mode, the PRAGMAs, and the DDL with SQLite's types.

Embedded default: one file under ``var/`` in WAL mode (readers never wait for the writer),
``synchronous=NORMAL``; the schema version is ``PRAGMA user_version``. A PostgreSQL adapter
is another module with the same four members (:class:`~ivr.store.sql.Adapter`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .records import StoreError
from .sql import SCHEMA_VERSION

STORE_FILE_MODE = 0o600  # callers' numbers and the digits they entered
BUSY_TIMEOUT_S = 10.0  # a write waits this long for another writer's lock, then fails

# Every table, as a new store gets it; an older one gains what it lacks (IF NOT EXISTS).
DDL = """
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
CREATE TABLE IF NOT EXISTS queue_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             REAL NOT NULL,
    event          TEXT NOT NULL,
    call_id        TEXT NOT NULL DEFAULT '',
    queue          TEXT NOT NULL DEFAULT '',
    agent_id       TEXT NOT NULL DEFAULT '',
    wait_s         REAL,
    talk_s         REAL,
    ring_s         REAL,
    hold_s         REAL,
    position       INTEGER,
    enter_position INTEGER,
    priority       INTEGER,
    reason         TEXT NOT NULL DEFAULT '',
    code           TEXT NOT NULL DEFAULT '',
    note           TEXT NOT NULL DEFAULT '',
    old_state      TEXT NOT NULL DEFAULT '',
    new_state      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_log_at ON queue_log (at);
CREATE INDEX IF NOT EXISTS queue_log_queue ON queue_log (queue, at);
CREATE INDEX IF NOT EXISTS queue_log_agent ON queue_log (agent_id, at);
CREATE INDEX IF NOT EXISTS queue_log_call ON queue_log (call_id);
CREATE TABLE IF NOT EXISTS recordings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id    TEXT NOT NULL REFERENCES calls (call_id),
    agent_id   TEXT NOT NULL DEFAULT '',
    queue      TEXT NOT NULL DEFAULT '',
    path       TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    channels   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_call ON recordings (call_id, id);
CREATE TABLE IF NOT EXISTS callbacks (
    callback_id TEXT PRIMARY KEY,
    queue       TEXT NOT NULL,
    number      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    call_id     TEXT NOT NULL DEFAULT '',
    priority    INTEGER NOT NULL DEFAULT 0,
    enter_at    REAL NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  REAL,
    deadline    REAL,
    outcome     TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '{}',
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_open ON callbacks (state, enter_at);
CREATE TABLE IF NOT EXISTS emergencies (
    queue      TEXT PRIMARY KEY,
    prompt     TEXT NOT NULL,
    set_at     REAL NOT NULL,
    expires_at REAL,
    outage_key TEXT NOT NULL DEFAULT '',
    offer_callback INTEGER NOT NULL DEFAULT 0
);
"""


def _make_private(path: Path) -> None:
    """Create the database file for this user only, before SQLite does (it would use
    0644); SQLite gives the -wal and -shm files the database's mode. Files an older
    version made world-readable are tightened.

    An existing file is never opened here: closing any descriptor of it would drop the
    POSIX locks this process's other connections hold on it (the controller has two), and
    the next process to close its own connection would then take itself for the last one
    and delete the WAL from under them."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, STORE_FILE_MODE))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if name.stat().st_mode & 0o077:
                os.chmod(name, STORE_FILE_MODE)


class SqliteAdapter:
    name = "sqlite"
    error: type[Exception] = sqlite3.Error
    begin = "BEGIN IMMEDIATE"  # take the write lock now, not at the first write

    def __init__(self, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.busy_timeout_s = busy_timeout_s

    def open(self, path: Path, migrate: Callable[[Any, int], None]) -> sqlite3.Connection:
        try:
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            _make_private(path)
            # check_same_thread off: the store's writer thread may open it and close it
            # from the thread that stops it (never two threads at once: see writer.py).
            db = sqlite3.connect(str(path), isolation_level=None,
                                 timeout=self.busy_timeout_s, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the call store: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: schema version {version} is newer than this program "
                    f"({SCHEMA_VERSION}); upgrade the program"
                )
            if version < SCHEMA_VERSION:
                db.execute(self.begin)
                try:
                    for stmt in DDL.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    migrate(db, version)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise StoreError(f"{path}: cannot open the call store: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return db
