"""The SQLite call store (ivr.store.CallStore) on a temporary file; times are passed in."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.store import SCHEMA_VERSION, CallRecord, CallStore, StoreError

T0 = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "ivr.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[CallStore]:
    s = CallStore(db_path)
    yield s
    s.close()


def row(store: CallStore, call_id: str) -> CallRecord:
    call = store.get_call(call_id)
    assert call is not None, f"no row for call {call_id}"
    return call


def arrive(store: CallStore, call_id: str, at: float = T0, worker: str = "w1") -> None:
    store.call_arrived(call_id, at, sip_call_id=f"sip-{call_id}", worker=worker,
                       from_uri="sip:alice@example.com", to_uri="sip:ivr@example.com",
                       flow="default", flow_version=3)


def end(store: CallStore, call_id: str, at: float, reason: str = "normal",
        hangup_by: str = "ivr") -> None:
    store.call_ended(call_id, at, reason=reason, hangup_by=hangup_by, sip_code=200,
                     sip_reason="OK")


def a_whole_call(store: CallStore, call_id: str = "c1") -> None:
    arrive(store, call_id)
    store.call_answered(call_id, T0 + 0.5, codec="PCMU/8000", telephone_event=True,
                        inband_dtmf=False)
    store.call_node(call_id, T0 + 0.6, node="welcome", node_type="play")
    store.call_node(call_id, T0 + 2.0, node="main_menu", node_type="menu")
    store.call_dtmf(call_id, T0 + 3.0, digit="2", method="rfc4733", node="main_menu")
    store.call_menu_choice(call_id, T0 + 3.0, node="main_menu", key="2", target="support")
    store.call_node(call_id, T0 + 3.0, node="support", node_type="play")
    store.call_event(call_id, T0 + 4.0, "menu.repeat", {"node": "support"})
    end(store, call_id, T0 + 9.0)


def test_a_call_fills_its_row(store: CallStore) -> None:
    a_whole_call(store)
    call = store.get_call("c1")
    assert call is not None
    assert call.sip_call_id == "sip-c1"
    assert (call.worker, call.from_uri, call.to_uri) == (
        "w1", "sip:alice@example.com", "sip:ivr@example.com")
    assert (call.flow, call.flow_version) == ("default", 3)
    assert (call.arrived_at, call.answered_at, call.ended_at) == (T0, T0 + 0.5, T0 + 9.0)
    assert call.codec == "PCMU/8000"
    assert call.dtmf_method == "rfc4733"
    assert call.last_node == "support"
    assert call.menu_path == "main_menu:2"
    assert (call.end_reason, call.hangup_by, call.sip_code, call.sip_reason) == (
        "normal", "ivr", 200, "OK")


def test_a_call_logs_its_events_in_order(store: CallStore) -> None:
    a_whole_call(store)
    events = store.events("c1")
    assert [e.kind for e in events] == [
        "arrived", "answered", "node", "node", "dtmf", "menu.choice", "node", "menu.repeat",
        "ended",
    ]
    assert [e.at for e in events] == [T0, T0 + 0.5, T0 + 0.6, T0 + 2.0, T0 + 3.0, T0 + 3.0,
                                      T0 + 3.0, T0 + 4.0, T0 + 9.0]
    assert {e.call_id for e in events} == {"c1"}
    assert events[0].data == {"sip_call_id": "sip-c1", "from": "sip:alice@example.com",
                              "to": "sip:ivr@example.com", "worker": "w1"}
    assert events[1].data == {"codec": "PCMU/8000", "telephone_event": True,
                              "inband_dtmf": False}
    assert events[4].data == {"digit": "2", "method": "rfc4733", "node": "main_menu"}
    assert events[5].data == {"node": "main_menu", "key": "2", "target": "support"}
    assert events[7].data == {"node": "support"}
    assert events[8].data == {"reason": "normal", "hangup_by": "ivr", "sip_code": 200,
                              "sip_reason": "OK"}


def test_a_new_call_is_open_and_unanswered(store: CallStore) -> None:
    arrive(store, "c1")
    call = store.get_call("c1")
    assert call is not None
    assert call.answered_at is None and call.ended_at is None
    assert call.menu_path == ""
    assert call.last_node is None


def test_menu_path_accumulates_choices_separated_by_spaces(store: CallStore) -> None:
    arrive(store, "c1")
    store.call_menu_choice("c1", T0 + 1, node="a", key="1", target="b")
    assert row(store, "c1").menu_path == "a:1"
    store.call_menu_choice("c1", T0 + 2, node="b", key="2", target="c")
    store.call_menu_choice("c1", T0 + 3, node="c", key="#", target="d")
    assert row(store, "c1").menu_path == "a:1 b:2 c:#"


def test_call_ended_twice_keeps_the_first_end_and_logs_it_once(store: CallStore) -> None:
    arrive(store, "c1")
    end(store, "c1", T0 + 5, reason="caller_hangup", hangup_by="caller")
    end(store, "c1", T0 + 6, reason="failure", hangup_by="system")
    call = store.get_call("c1")
    assert call is not None
    assert (call.ended_at, call.end_reason, call.hangup_by) == (T0 + 5, "caller_hangup",
                                                               "caller")
    assert [e.kind for e in store.events("c1")] == ["arrived", "ended"]


def test_close_orphans_closes_only_open_calls_of_the_worker(store: CallStore) -> None:
    arrive(store, "open1", worker="w1")
    arrive(store, "open2", worker="w1")
    arrive(store, "done1", worker="w1")
    end(store, "done1", T0 + 5)
    arrive(store, "other", worker="w2")

    closed = store.close_orphans(T0 + 100, "failure", worker="w1")

    assert sorted(closed) == ["open1", "open2"]
    for call_id in ("open1", "open2"):
        call = store.get_call(call_id)
        assert call is not None
        assert (call.ended_at, call.end_reason, call.hangup_by) == (T0 + 100, "failure",
                                                                   "system")
        assert (call.sip_code, call.sip_reason) == (None, None)
        assert store.events(call_id)[-1].data == {"reason": "failure", "hangup_by": "system",
                                                  "sip_code": None, "sip_reason": None,
                                                  "presumed": True}  # no worker's account
    done = store.get_call("done1")
    assert done is not None and (done.ended_at, done.end_reason) == (T0 + 5, "normal")
    other = store.get_call("other")
    assert other is not None and other.ended_at is None


def test_close_orphans_without_a_worker_closes_every_open_call(store: CallStore) -> None:
    arrive(store, "a", worker="w1")
    arrive(store, "b", worker="w2")
    assert sorted(store.close_orphans(T0 + 1, "failure")) == ["a", "b"]
    assert store.close_orphans(T0 + 2, "failure") == []


def test_reopening_the_store_keeps_its_data_in_wal_mode(db_path: Path) -> None:
    first = CallStore(db_path)
    a_whole_call(first)
    first.close()

    again = CallStore(db_path)
    try:
        call = again.get_call("c1")
        assert call is not None and call.menu_path == "main_menu:2"
        assert len(again.events("c1")) == 9
        mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        again.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_lookups_by_sip_call_id_and_recent_calls(store: CallStore) -> None:
    arrive(store, "old", at=T0)
    arrive(store, "new", at=T0 + 10)
    found = store.find_by_sip_call_id("sip-new")
    assert found is not None and found.call_id == "new"
    assert store.find_by_sip_call_id("sip-nope") is None
    assert store.get_call("nope") is None
    assert [c.call_id for c in store.recent_calls()] == ["new", "old"]
    assert [c.call_id for c in store.recent_calls(limit=1)] == ["new"]


def test_an_event_for_an_unknown_call_is_a_store_error(store: CallStore, db_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        store.call_dtmf("ghost", T0, digit="1", method="rfc4733", node="m")
    assert str(info.value).startswith(f"{db_path}: cannot record dtmf of call ghost: ")


def test_a_store_from_a_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError) as info:
        CallStore(db_path)
    assert str(info.value) == (
        f"{db_path}: schema version 99 is newer than this program ({SCHEMA_VERSION}); "
        "upgrade the program"
    )


def test_a_path_below_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    path = blocker / "ivr.sqlite3"
    with pytest.raises(StoreError) as info:
        CallStore(path)
    assert str(info.value).startswith(f"{path}: cannot open the call store: ")


def test_a_directory_in_place_of_the_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "ivr.sqlite3"
    path.mkdir()
    with pytest.raises(StoreError) as info:
        CallStore(path)
    assert str(info.value).startswith(f"{path}: cannot open the call store: ")


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "ivr.sqlite3"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError) as info:
        CallStore(path)
    assert str(info.value) == f"{path}: cannot open the call store: file is not a database"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_directory_is_a_store_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="cannot open the call store"):
            CallStore(ro / "ivr.sqlite3")
    finally:
        ro.chmod(0o700)


ARGS = {"sip_call_id": "sip-b1", "worker": "w1", "from_uri": "sip:a@x", "to_uri": "sip:ivr@x",
        "flow": "default", "flow_version": 1}


def test_a_batch_is_written_in_order_in_one_transaction(store: CallStore) -> None:
    failed = store.apply_batch([
        ("call_arrived", "b1", T0, ARGS),
        ("call_node", "b1", T0 + 1, {"node": "menu", "node_type": "menu"}),
        ("call_menu_choice", "b1", T0 + 2, {"node": "menu", "key": "1", "target": "x"}),
        ("call_ended", "b1", T0 + 3, {"reason": "normal", "hangup_by": "caller",
                                      "sip_code": None, "sip_reason": None}),
    ])
    assert failed == []
    call = row(store, "b1")
    assert (call.last_node, call.menu_path, call.end_reason) == ("menu", "menu:1", "normal")
    assert [e.kind for e in store.events("b1")] == ["arrived", "node", "menu.choice", "ended"]


def test_a_failed_write_in_a_batch_is_undone_alone_and_reported(store: CallStore) -> None:
    failed = store.apply_batch([
        ("call_arrived", "b1", T0, ARGS),
        ("call_event", "nobody", T0 + 1, {"kind": "x", "data": {}}),  # unknown call
        ("call_drop_table", "b1", T0 + 1, {}),  # not a recorder method
        ("call_node", "b1", T0 + 2, {"node": "menu", "node_type": "menu"}),
    ])
    assert [(op[0], op[1]) for op, _ in failed] == [("call_event", "nobody"),
                                                    ("call_drop_table", "b1")]
    assert "call nobody" in str(failed[0][1])
    assert "not a recorder method" in str(failed[1][1])
    assert [e.kind for e in store.events("b1")] == ["arrived", "node"]
    assert store.events("nobody") == []
    # the store is usable afterwards, in and out of batches
    arrive(store, "c2")
    assert store.apply_batch([("call_node", "c2", T0, {"node": "n", "node_type": "play"})]) == []
    assert row(store, "c2").last_node == "n"


def test_a_batch_that_cannot_commit_stores_nothing(store: CallStore, db_path: Path) -> None:
    other = sqlite3.connect(str(db_path), isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    store._db.execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(StoreError, match="cannot start a transaction"):
            store.apply_batch([("call_arrived", "b1", T0, ARGS)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.get_call("b1") is None
    assert store.apply_batch([("call_arrived", "b1", T0, ARGS)]) == []
    assert row(store, "b1").worker == "w1"


def test_a_version_1_store_opens_and_gains_the_blocked_calls_table(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:  # what version 1 created
        db.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY, sip_call_id TEXT NOT NULL,"
                   " worker TEXT NOT NULL, from_uri TEXT NOT NULL, to_uri TEXT NOT NULL,"
                   " flow TEXT NOT NULL, flow_version INTEGER NOT NULL,"
                   " arrived_at REAL NOT NULL, answered_at REAL, ended_at REAL, codec TEXT,"
                   " dtmf_method TEXT, last_node TEXT, menu_path TEXT NOT NULL DEFAULT '',"
                   " end_reason TEXT, hangup_by TEXT, sip_code INTEGER, sip_reason TEXT)")
        db.execute("INSERT INTO calls (call_id, sip_call_id, worker, from_uri, to_uri, flow,"
                   " flow_version, arrived_at) VALUES ('old', 's', 'w', 'f', 't', 'main', 1, 1)")
        db.execute("PRAGMA user_version=1")
    db.close()
    store = CallStore(db_path)
    try:
        assert store.get_call("old") is not None
        assert store.blocked_calls() == [] and store.blocked_counts() == {}
        # what the front writes (ivr/kamailio.cfg.tmpl, route STORE_BLOCKED)
        store._db.execute(
            "INSERT INTO blocked_calls (at, reason, sip_code, source, from_uri, to_uri,"
            " sip_call_id) VALUES (1700000000.5, 'stack_full', 486, '192.0.2.7',"
            " 'sip:a@x', 'sip:ivr@y', 'c1'), (1700000001.0, 'flood', 0, '192.0.2.8',"
            " 'sip:b@x', 'sip:ivr@y', 'c2')")
        assert [b.reason for b in store.blocked_calls()] == ["flood", "stack_full"]
        assert store.blocked_calls(since=1700000000.9)[0].sip_call_id == "c2"
        assert store.blocked_counts() == {"flood": 1, "stack_full": 1}
    finally:
        store.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    db.close()


def test_ivr_blocked_lists_refused_calls_with_counts_by_reason(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    var = tmp_path / "var"
    store = CallStore(var / "ivr.sqlite3")
    store._db.execute(  # as the front writes them
        "INSERT INTO blocked_calls (at, reason, sip_code, source, from_uri, to_uri, sip_call_id)"
        " VALUES (1700000000, 'stack_full', 486, '192.0.2.7', 'sip:alice@x', 'sip:ivr@y', 'c1'),"
        " (1700000001, 'source_limit', 503, '192.0.2.8', 'sip:bob@x', 'sip:ivr@y', 'c2'),"
        " (1700000002, 'source_limit', 503, '192.0.2.8', 'sip:bob@x', 'sip:ivr@y', 'c3')")
    store.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("IVR_")},
           "IVR_PATHS_VAR_DIR": str(var)}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "blocked"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "3 refused in all: 2 source_limit, 1 stack_full"
    assert "c3" in lines[2] and "source_limit" in lines[2] and "192.0.2.8" in lines[2]
    assert "486" in lines[4] and "sip:alice@x" in lines[4]
    js = subprocess.run([sys.executable, "-m", "ivr.cli", "blocked", "--json", "-n", "1"],
                        cwd=root, env=env, capture_output=True, text=True, timeout=60,
                        check=True).stdout
    assert '"sip_call_id": "c3"' in js and '"c2"' not in js


def test_a_second_connection_in_the_process_leaves_the_first_ones_writes_visible(
        db_path: Path) -> None:
    """The controller opens the store twice (its loop's reads, its writer thread). Opening
    the second must not drop the first one's locks: else another process closing its
    connection deletes the WAL the first still writes to, and nobody sees those writes."""
    import subprocess
    import sys

    first = CallStore(db_path)
    second = CallStore(db_path)
    try:
        arrive(first, "before")
        probe = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
                 " print(db.execute('SELECT COUNT(*) FROM calls').fetchone()[0]); db.close()")
        run = [sys.executable, "-c", probe, str(db_path)]
        assert subprocess.run(run, capture_output=True, text=True, timeout=60,
                              check=True).stdout.split() == ["1"]
        arrive(first, "after")  # written after another process closed its connection
        assert subprocess.run(run, capture_output=True, text=True, timeout=60,
                              check=True).stdout.split() == ["2"]
        assert db_path.with_name(db_path.name + "-wal").exists()
    finally:
        second.close()
        first.close()
