"""The store's ACD tables (schema 4): the queue log, the restart's view of agents and
queues read from it, and recordings linked to calls. SQLite on a temporary file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.acd.queue_log import QueueEvent as E
from ivr.acd.queue_log import QueueLogRow
from ivr.store import SCHEMA_VERSION, CallStore, Recording, StoreError, StoreOp

T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    s = CallStore(tmp_path / "var" / "ivr.sqlite3")
    yield s
    s.close()


def arrive(store: CallStore, call_id: str, at: float = T0) -> None:
    store.call_arrived(call_id, at, sip_call_id=f"sip-{call_id}", worker="w000",
                       from_uri="sip:alice@x", to_uri="sip:ivr@x", flow="default",
                       flow_version=1)


def enter(call_id: str, at: float, queue: str = "support", priority: int = 0) -> QueueLogRow:
    return QueueLogRow(at, E.ENTERQUEUE, call_id, queue, position=1, enter_position=1,
                       priority=priority, reason="sip:alice@x")


def agent(agent_id: str, at: float, old: str, new: str, event: E,
          reason: str = "") -> QueueLogRow:
    return QueueLogRow(at, event, agent_id=agent_id, old_state=old, new_state=new,
                       reason=reason)


def test_every_field_of_a_queue_log_row_comes_back_as_it_went_in(store: CallStore) -> None:
    full = QueueLogRow(T0, E.COMPLETEAGENT, "c1", "support", "1001", wait_s=12.5,
                       talk_s=61.25, ring_s=3.0, hold_s=4.5, position=2, enter_position=3,
                       priority=5, reason="r", code="billing/refund", note="n",
                       old_state="on_call", new_state="wrap_up")
    bare = QueueLogRow(T0 + 1, E.WRAPUP, agent_id="1001", code="billing/refund")
    store.append_queue_log([full, bare])
    assert store.queue_log() == [full, bare]
    assert store.queue_log()[0].event is E.COMPLETEAGENT


def test_the_queue_log_reads_in_append_order_and_filters(store: CallStore) -> None:
    rows = [enter("c1", T0 + 5), QueueLogRow(T0 + 1, E.RING, "c1", "support", "1001"),
            enter("c2", T0 + 2, queue="sales"),
            QueueLogRow(T0 + 3, E.CONNECT, "c1", "support", "1001", wait_s=8.0)]
    store.append_queue_log(rows)
    assert store.queue_log() == rows  # the order appended, not the order of `at`
    assert store.queue_log(queue="sales") == [rows[2]]
    assert store.queue_log(agent_id="1001") == [rows[1], rows[3]]
    assert store.queue_log(call_id="c1") == [rows[0], rows[1], rows[3]]
    assert store.queue_log(since=T0 + 2.5) == [rows[0], rows[3]]
    assert store.queue_log(since=T0 + 2.5, call_id="c1", agent_id="1001") == [rows[3]]


def test_a_bad_row_is_refused_by_name_and_nothing_of_its_lot_is_appended(
        store: CallStore) -> None:
    with pytest.raises(StoreError, match="queue-log event 'RING' is not a QueueEvent"):
        store.append_queue_log([enter("c1", T0),
                                QueueLogRow(T0, "RING", "c1")])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="is not a QueueLogRow"):
        store.append_queue_log([("c1", T0)])  # type: ignore[list-item]
    assert store.queue_log() == []


def test_agent_states_are_each_agents_latest_state_row(store: CallStore) -> None:
    store.append_queue_log([
        agent("1001", T0, "logged_out", "ready", E.AGENTLOGIN),
        agent("1002", T0 + 1, "logged_out", "not_ready", E.AGENTLOGIN, "training"),
        agent("1001", T0 + 2, "ready", "reserved", E.AGENTSTATE),
        QueueLogRow(T0 + 3, E.RING, "c1", "support", "1001"),  # not a state row
        agent("1001", T0 + 4, "reserved", "not_ready", E.PAUSE, "no-answer"),
        QueueLogRow(T0 + 5, E.WRAPUP, agent_id="1002", code="x"),  # nor this
        agent("1003", T0 + 6, "logged_out", "ready", E.AGENTLOGIN),
        agent("1003", T0 + 7, "ready", "logged_out", E.AGENTLOGOFF),
    ])
    assert store.agent_states() == {
        "1001": ("not_ready", "no-answer", T0 + 4),
        "1002": ("not_ready", "training", T0 + 1),
        "1003": ("logged_out", "", T0 + 7),
    }
    assert store.agent_states()["1001"].reason == "no-answer"


def test_open_queue_entries_are_the_callers_with_no_final_row_in_enter_order(
        store: CallStore) -> None:
    store.append_queue_log([
        enter("c1", T0), enter("c2", T0 + 1, priority=5), enter("c3", T0 + 2),
        QueueLogRow(T0 + 3, E.RING, "c1", "support", "1001"),
        QueueLogRow(T0 + 4, E.RINGNOANSWER, "c1", "support", "1001"),  # back in the queue
        QueueLogRow(T0 + 5, E.CONNECT, "c3", "support", "1002"),  # connected: not final
        QueueLogRow(T0 + 6, E.ABANDON, "c2", "support", wait_s=5.0),
        enter("c4", T0 + 7),
        QueueLogRow(T0 + 8, E.EXITWITHTIMEOUT, "c4", "support"),  # overflow to sales
        enter("c4", T0 + 8, queue="sales"),
        QueueLogRow(T0 + 9, E.JOINEMPTY, "c5", "billing"),  # final, never entered
    ])
    assert store.open_queue_entries() == [
        ("c1", "support", T0, 0), ("c3", "support", T0 + 2, 0), ("c4", "sales", T0 + 8, 0)]
    store.append_queue_log([QueueLogRow(T0 + 10, E.COMPLETECALLER, "c3", "support")])
    entries = store.open_queue_entries()
    assert [(e.call_id, e.queue) for e in entries] == [("c1", "support"), ("c4", "sales")]


def test_a_call_back_in_the_same_queue_after_a_final_row_is_open_again(
        store: CallStore) -> None:
    store.append_queue_log([
        enter("c1", T0), QueueLogRow(T0 + 1, E.COMPLETEAGENT, "c1", "support"),
        enter("c1", T0 + 2, priority=3)])
    assert store.open_queue_entries() == [("c1", "support", T0 + 2, 3)]


def test_an_agent_recording_event_links_the_file_to_the_call(store: CallStore) -> None:
    arrive(store, "c1")
    data = {"path": "var/recordings/2026-12-01/c1-agent1.wav", "agent_id": "1001",
            "queue": "support", "duration_s": 42.5, "channels": 2}
    store.call_event("c1", T0 + 60, "recording", data)
    assert store.recordings("c1") == [Recording(
        "c1", "1001", "support", "var/recordings/2026-12-01/c1-agent1.wav",
        T0 + 60 - 42.5, 42.5, 2)]
    assert [e.kind for e in store.events("c1")] == ["arrived", "recording"]
    assert store.recordings("other") == []


def test_a_voicemail_recording_event_is_a_one_channel_recording_without_agent(
        store: CallStore) -> None:
    arrive(store, "c1")
    store.call_event("c1", T0 + 9, "recording",
                     {"path": "var/recordings/c1-1.wav", "duration_s": 4.0,
                      "heard_voice": True})
    assert store.recordings("c1") == [
        Recording("c1", "", "", "var/recordings/c1-1.wav", T0 + 5, 4.0, 1)]


def test_a_recording_event_without_a_path_is_refused_and_nothing_is_written(
        store: CallStore) -> None:
    arrive(store, "c1")
    with pytest.raises(StoreError, match="recording of call c1: no path"):
        store.call_event("c1", T0 + 1, "recording", {"duration_s": 1.0})
    with pytest.raises(StoreError, match="channels 'two' is not a positive integer"):
        store.call_event("c1", T0 + 1, "recording", {"path": "x.wav", "channels": "two"})
    assert store.recordings("c1") == []
    assert [e.kind for e in store.events("c1")] == ["arrived"]


def test_a_replayed_recording_is_linked_once(store: CallStore) -> None:
    args = {"sip_call_id": "s", "worker": "w", "from_uri": "f", "to_uri": "t",
            "flow": "default", "flow_version": 1}
    data = {"path": "a.wav", "duration_s": 5.0, "agent_id": "1001", "channels": 2}
    ops: list[StoreOp] = [("call_arrived", "c1", T0, args),
                          ("call_event", "c1", T0 + 5, {"kind": "recording", "data": data})]
    store.replay(ops)
    store.replay(ops)
    assert len(store.recordings("c1")) == 1


def test_a_batch_keeps_records_and_queue_log_rows_in_order_and_undoes_a_bad_row_alone(
        store: CallStore) -> None:
    args = {"sip_call_id": "s", "worker": "w", "from_uri": "f", "to_uri": "t",
            "flow": "default", "flow_version": 1}
    failed = store.apply_batch([
        ("call_arrived", "c1", T0, args),
        enter("c1", T0 + 1),
        QueueLogRow(T0 + 2, "CONNECT", "c1"),  # type: ignore[arg-type]
        QueueLogRow(T0 + 3, E.ABANDON, "c1", "support"),
        ("call_node", "c1", T0 + 4, {"node": "bye", "node_type": "play"}),
    ])
    assert len(failed) == 1 and "not a QueueEvent" in str(failed[0][1])
    assert [r.event for r in store.queue_log()] == [E.ENTERQUEUE, E.ABANDON]
    call = store.get_call("c1")
    assert call is not None and call.last_node == "bye"


def _version_3_store(path: Path) -> None:
    """What schema 3 held: a call with a voicemail message, an agent (tables abridged)."""
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY, sip_call_id TEXT NOT NULL,"
                   " worker TEXT NOT NULL, from_uri TEXT NOT NULL, to_uri TEXT NOT NULL,"
                   " flow TEXT NOT NULL, flow_version INTEGER NOT NULL,"
                   " arrived_at REAL NOT NULL, answered_at REAL, ended_at REAL, codec TEXT,"
                   " dtmf_method TEXT, last_node TEXT, menu_path TEXT NOT NULL DEFAULT '',"
                   " end_reason TEXT, hangup_by TEXT, sip_code INTEGER, sip_reason TEXT)")
        db.execute("CREATE TABLE call_events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " call_id TEXT NOT NULL REFERENCES calls (call_id), at REAL NOT NULL,"
                   " kind TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}')")
        db.execute("CREATE TABLE agents_sip (agent_id TEXT PRIMARY KEY, display_name TEXT"
                   " NOT NULL, realm TEXT NOT NULL, ha1 TEXT NOT NULL, ha1b TEXT NOT NULL,"
                   " queues TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,"
                   " updated_at REAL NOT NULL)")
        db.execute("INSERT INTO calls (call_id, sip_call_id, worker, from_uri, to_uri, flow,"
                   " flow_version, arrived_at, ended_at, end_reason) VALUES"
                   " ('old', 's', 'w', 'f', 't', 'main', 1, 100, 130, 'normal')")
        for at, kind, data in ((100, "arrived", {}),
                               (120, "recording", {"path": "var/recordings/old-1.wav",
                                                   "duration_s": 8.0, "heard_voice": True}),
                               (121, "recording", {"path": "", "duration_s": 0.0})):
            db.execute("INSERT INTO call_events (call_id, at, kind, data) VALUES (?, ?, ?, ?)",
                       ("old", at, kind, json.dumps(data)))
        db.execute("INSERT INTO agents_sip VALUES ('1001', 'Ann', 'r', 'h', 'hb',"
                   " 'support:5', 1, 1)")
        db.execute("PRAGMA user_version=3")
    db.close()


def test_a_version_3_store_opens_as_the_current_version_with_its_data_and_recordings_linked(
        tmp_path: Path) -> None:
    path = tmp_path / "var" / "ivr.sqlite3"
    _version_3_store(path)
    store = CallStore(path)
    try:
        call = store.get_call("old")
        assert call is not None and call.end_reason == "normal"
        assert [e.kind for e in store.events("old")] == ["arrived", "recording", "recording"]
        assert [a.agent_id for a in store.agents_sip()] == ["1001"]
        assert store.recordings("old") == [
            Recording("old", "", "", "var/recordings/old-1.wav", 112.0, 8.0, 1)]
        assert store.queue_log() == [] and store.open_queue_entries() == []
        store.append_queue_log([enter("new", T0)])
        assert store.open_queue_entries() == [("new", "support", T0, 0)]
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        indexes = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue_log'")}
    db.close()
    assert {"queue_log_at", "queue_log_queue", "queue_log_agent", "queue_log_call"} <= indexes
    again = CallStore(path)  # opening it again changes nothing
    assert len(again.recordings("old")) == 1
    again.close()


def test_ivr_call_lists_the_calls_queue_log_rows_and_recordings(tmp_path: Path) -> None:
    var = tmp_path / "var"
    store = CallStore(var / "ivr.sqlite3")
    arrive(store, "c1")
    store.append_queue_log([
        enter("c1", T0 + 2), QueueLogRow(T0 + 10, E.CONNECT, "c1", "support", "1001",
                                         wait_s=8.0, ring_s=2.0)])
    store.call_event("c1", T0 + 40, "recording",
                     {"path": "var/recordings/c1-agent1.wav", "agent_id": "1001",
                      "queue": "support", "duration_s": 30.0, "channels": 2})
    store.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("IVR_")},
           "IVR_PATHS_VAR_DIR": str(var)}
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "call", "c1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    at = lines.index("queue log:")
    assert "ENTERQUEUE" in lines[at + 1] and "queue=support" in lines[at + 1]
    assert lines[at + 2].split()[:2] == ["10.000s", "CONNECT"]
    assert "agent_id=1001" in lines[at + 2] and "wait_s=8.0" in lines[at + 2]
    assert lines[at + 3] == "recordings:"
    assert lines[at + 4] == ("    10.000s  30.0 s, 2 channels, agent 1001 in support: "
                             "var/recordings/c1-agent1.wav")
