"""The store's writer thread (ivr/store/writer.py) and the controller's writes through it:
order across kinds of job, a locked database that never holds up the event loop, retry in
order after a failed commit, the bound on what is kept. Order and counts, no wall clock."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.acd.queue_log import QueueEvent as E
from ivr.acd.queue_log import QueueLogRow
from ivr.config import load_settings
from ivr.controller import Controller
from ivr.store import CallStore, SqliteAdapter, StoreOp, StoreWriter

T0 = 1_700_000_000.0


def arrived(call_id: str, at: float = T0) -> StoreOp:
    return ("call_arrived", call_id, at, {"sip_call_id": f"sip-{call_id}", "worker": "w000",
                                          "from_uri": "sip:a@x", "to_uri": "sip:ivr@x",
                                          "flow": "default", "flow_version": 1})


def ended(call_id: str, at: float, presumed: bool = False) -> StoreOp:
    args = {"reason": "failure" if presumed else "normal", "hangup_by": "system",
            "sip_code": None, "sip_reason": None}
    return ("call_ended", call_id, at, {**args, "presumed": True} if presumed else args)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "ivr.sqlite3"


@pytest.fixture
def writer(db_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(db_path)
    w.start()
    yield w
    w.close()


def stored_calls(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        ids = [r[0] for r in db.execute("SELECT call_id FROM calls ORDER BY arrived_at")]
    db.close()
    return ids


class WriteLock:
    """Another connection holding the database's write lock (as Kamailio or `ivr agent
    add` may)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=0)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def test_records_rows_and_calls_are_done_in_the_order_submitted(
        writer: StoreWriter, db_path: Path) -> None:
    writer.submit([arrived("c1")])
    writer.submit_queue_log([QueueLogRow(T0 + 1, E.ENTERQUEUE, "c1", "support")])
    seen = writer.call(lambda store: (store.get_call("c1") is not None,
                                      len(store.queue_log())))
    writer.submit([ended("c1", T0 + 2)])
    writer.submit_queue_log([QueueLogRow(T0 + 2, E.ABANDON, "c1", "support")])
    assert seen.result(timeout=60) == (True, 1)  # a call job sees what came before it
    assert writer.flush(timeout_s=60)
    store = CallStore(db_path)
    try:
        assert [r.event for r in store.queue_log()] == [E.ENTERQUEUE, E.ABANDON]
        assert [e.kind for e in store.events("c1")] == ["arrived", "ended"]
    finally:
        store.close()
    assert writer.pending == 0 and writer.failed_commits == 0


def test_a_locked_database_does_not_hold_up_the_loop_and_is_written_once_free(
        writer: StoreWriter, db_path: Path) -> None:
    lock = WriteLock(db_path)
    order: list[str] = []

    async def meanwhile() -> None:
        order.append("task ran")
        assert stored_calls(db_path) == []  # still waiting for the lock
        lock.release()  # only the loop can free it: a blocked loop would never get here
        order.append("lock released")

    async def scenario() -> None:
        writer.submit([arrived("c1")])
        order.append("submitted")
        task = asyncio.get_running_loop().create_task(meanwhile())
        await writer.drain()
        order.append("written")
        await task

    asyncio.run(scenario())
    assert order == ["submitted", "task ran", "lock released", "written"]
    assert stored_calls(db_path) == ["c1"]
    assert writer.failed_commits == 0  # it waited for the lock; nothing had to be retried


def test_a_batch_that_cannot_commit_is_retried_in_order_before_newer_records(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(db_path, adapter=SqliteAdapter(busy_timeout_s=0), retry_s=0.01)
    writer.start()
    lock = WriteLock(db_path)
    try:
        writer.submit([arrived("c1", T0), arrived("c2", T0 + 1)])
        # the first attempt fails at once (no busy wait); the batch goes back to the head
        for _ in range(6000):
            if writer.failed_commits:
                break
            writer.flush(timeout_s=0.01)
        assert writer.failed_commits >= 1
        writer.submit([arrived("c3", T0 + 2), ended("c1", T0 + 3)])
        assert stored_calls(db_path) == []
    finally:
        lock.release()
    assert writer.flush(timeout_s=60)
    assert stored_calls(db_path) == ["c1", "c2", "c3"]
    store = CallStore(db_path)
    call = store.get_call("c1")
    store.close()
    assert call is not None and call.end_reason == "normal"
    assert writer.pending == 0 and writer.dropped == 0
    assert "kept for retry" in caplog.text
    writer.close()


def test_an_unwritable_store_keeps_at_most_pending_max_records_dropping_the_oldest(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(db_path, adapter=SqliteAdapter(busy_timeout_s=0), retry_s=0.01,
                         pending_max=3)
    writer.start()
    lock = WriteLock(db_path)
    try:
        writer.submit([arrived(f"c{i}", T0 + i) for i in range(5)])
        for _ in range(6000):
            if writer.dropped:
                break
            writer.flush(timeout_s=0.01)
        assert writer.dropped == 2 and writer.pending == 3
    finally:
        lock.release()
    assert writer.flush(timeout_s=60)
    assert stored_calls(db_path) == ["c2", "c3", "c4"]
    assert "dropped the 2 oldest call records" in caplog.text
    writer.close()


def test_close_writes_what_is_queued_and_a_closed_writer_refuses_more(
        db_path: Path) -> None:
    writer = StoreWriter(db_path)
    writer.start()
    writer.submit([arrived("c1"), ended("c1", T0 + 1)])
    assert writer.close() == 0
    assert stored_calls(db_path) == ["c1"]
    with pytest.raises(Exception, match="the store writer is closed"):
        writer.submit([arrived("c2")])


def test_a_bad_record_is_logged_and_the_others_are_written(
        writer: StoreWriter, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer.submit([arrived("c1"), ("call_node", "c1", T0, {"nod": "x"}),
                   ("call_node", "ghost", T0, {"node": "x", "node_type": "play"}),
                   ended("c1", T0 + 1)])
    assert writer.flush(timeout_s=60)
    assert stored_calls(db_path) == ["c1"]
    assert "could not apply call_node of call c1" in caplog.text
    assert "could not apply call_node of call ghost" in caplog.text


# -- the controller's store writes ---------------------------------------------------------


def _controller(tmp_path: Path) -> Controller:
    settings = load_settings(None, env={"IVR_PATHS_VAR_DIR": str(tmp_path / "var")})
    c = Controller(settings)
    c.store = CallStore(settings.db_path)  # what start() opens
    c.store_writer = StoreWriter(settings.db_path)
    c.store_writer.start()
    return c


def test_the_controllers_flush_does_not_wait_for_a_locked_store(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []

    async def scenario() -> None:
        c = _controller(tmp_path)
        lock = WriteLock(c.settings.db_path)

        async def meanwhile() -> None:
            order.append("task ran")
            lock.release()

        task = asyncio.get_running_loop().create_task(meanwhile())
        c._queue_store(arrived("c1"))
        c._queue_store(ended("c1", T0 + 1))
        c.flush_store()
        order.append("flushed")
        await task
        assert c.store_writer is not None
        await c.store_writer.drain()
        order.append("written")
        assert c.store is not None
        call = c.store.get_call("c1")
        assert call is not None and call.end_reason == "normal"
        c.store_writer.close()
        c.store.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    assert order == ["flushed", "task ran", "written"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_dead_workers_records_are_written_before_the_presumed_end_of_its_calls(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        c = _controller(tmp_path)
        c._queue_store(arrived("c1"))
        c._queue_store(arrived("c2"))
        c._queue_store(ended("c1", T0 + 5))  # the worker's own end, sent before it died
        c.record_queue_log([QueueLogRow(T0 + 5, E.COMPLETECALLER, "c1", "support")])
        # what _worker_gone queues for the calls still open on the dead worker
        c._store_pending.extend([ended("c1", T0 + 6, presumed=True),
                                 ended("c2", T0 + 6, presumed=True)])
        c.flush_store()
        assert c.store_writer is not None and c.store is not None
        await c.store_writer.drain()
        one, two = c.store.get_call("c1"), c.store.get_call("c2")
        assert one is not None and (one.end_reason, one.ended_at) == ("normal", T0 + 5)
        assert two is not None and two.end_reason == "failure"
        assert [r.event for r in c.store.queue_log()] == [E.COMPLETECALLER]
        c.store_writer.close()
        c.store.close()

    asyncio.run(scenario())


def test_close_gives_up_on_a_store_locked_past_its_wait_and_counts_what_is_lost(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(db_path, adapter=SqliteAdapter(busy_timeout_s=0), retry_s=0.01)
    writer.start()
    lock = WriteLock(db_path)
    try:
        writer.submit([arrived("c1"), arrived("c2")])
        assert writer.close(timeout_s=0.2) == 2
    finally:
        lock.release()
    assert writer.dropped == 2 and stored_calls(db_path) == []
    assert "2 call records were not written" in caplog.text
