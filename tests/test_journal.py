"""A pooled worker's journal of call records, and its idempotent replay into the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.journal import JournalWriter, UnconfirmedRecords, read_journal, replay_journals
from ivr.link import ControllerLink, RemoteRecorder
from ivr.protocol import encode
from ivr.store import CallStore, StoreOp
from tests import sipp
from tests.conftest import start_stack
from tests.test_pool import finish, hold_calls, wait_rows

T0 = 1_700_000_000.0


def whole_call(call_id: str, t: float = T0) -> list[StoreOp]:
    return [
        ("call_arrived", call_id, t, {"sip_call_id": f"sip-{call_id}", "worker": "w001",
                                      "from_uri": "sip:a@x", "to_uri": "sip:ivr@x",
                                      "flow": "default", "flow_version": 1}),
        ("call_answered", call_id, t + 0.5, {"codec": "PCMU/8000", "telephone_event": True,
                                             "inband_dtmf": False}),
        ("call_node", call_id, t + 0.6, {"node": "welcome", "node_type": "play"}),
        ("call_dtmf", call_id, t + 2.0, {"digit": "1", "method": "rfc4733", "node": "menu"}),
        ("call_menu_choice", call_id, t + 2.0, {"node": "menu", "key": "1", "target": "a"}),
        ("call_event", call_id, t + 2.5, {"kind": "menu.repeat", "data": {"node": "a"}}),
        ("call_ended", call_id, t + 9.0, {"reason": "caller_hangup", "hangup_by": "caller",
                                          "sip_code": 200, "sip_reason": "OK"}),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    s = CallStore(tmp_path / "ivr.sqlite3")
    yield s
    s.close()


def test_unconfirmed_records_are_open_calls_and_calls_ended_lately_in_order_sent() -> None:
    recent = UnconfirmedRecords(retain_s=10)
    a, b = whole_call("a"), whole_call("b")
    for op in a:  # call a ends at t=0
        recent.sent(op, now=0.0)
    recent.sent(b[0], now=1.0)
    recent.sent(b[1], now=2.0)
    assert recent.all(now=5.0) == a + b[:2]
    assert recent.all(now=10.5) == b[:2]  # a ended more than retain_s ago: confirmed
    recent.sent(b[-1], now=11.0)
    assert recent.all(now=12.0) == [b[0], b[1], b[-1]]


def test_replay_writes_what_is_missing_and_skips_what_is_stored(store: CallStore) -> None:
    ops = whole_call("c1")
    assert store.apply_batch(ops[:3]) == []  # reached the store before the link died
    first = store.replay(ops)
    assert (first.applied, first.skipped, first.failed) == (4, 3, [])
    again = store.replay(ops)
    assert (again.applied, again.skipped) == (0, 7)
    call = store.get_call("c1")
    assert call is not None
    assert (call.end_reason, call.hangup_by, call.sip_code) == ("caller_hangup", "caller", 200)
    assert [e.kind for e in store.events("c1")] == [
        "arrived", "answered", "node", "dtmf", "menu.choice", "menu.repeat", "ended"]


def test_a_journaled_end_replaces_a_presumed_failure_but_never_a_workers_own_end(
        store: CallStore) -> None:
    ops = whole_call("c1")
    store.apply_batch(ops[:-1])
    assert store.close_orphans(T0 + 60, "failure") == ["c1"]  # the restart's presumption
    store.replay(ops)
    call = store.get_call("c1")
    assert call is not None
    assert (call.end_reason, call.ended_at, call.sip_code) == ("caller_hangup", T0 + 9.0, 200)
    # A worker's own end stays: a different end replayed later changes nothing.
    store.replay([("call_ended", "c1", T0 + 20, {"reason": "failure", "hangup_by": "system",
                                                  "sip_code": None, "sip_reason": "x"})])
    call = store.get_call("c1")
    assert call is not None and call.end_reason == "caller_hangup"
    assert store.close_orphans(T0 + 90, "failure") == []


def test_a_lost_link_journals_the_unconfirmed_records_then_every_later_one(
        tmp_path: Path) -> None:
    link = ControllerLink(tmp_path / "nowhere.sock", {})  # never connected: sends go nowhere
    now = [0.0]
    journal = JournalWriter(tmp_path / "journal", "w001", os.getpid())
    recorder = RemoteRecorder(link, journal, clock=lambda: now[0])
    recorder.call_arrived("c1", T0, sip_call_id="s1", worker="w001", from_uri="sip:a@x",
                          to_uri="sip:ivr@x", flow="default", flow_version=1)
    recorder.call_node("c1", T0 + 1, node="welcome", node_type="play")
    assert not journal.path.exists()
    link.lost = True  # the controller went away
    now[0] = 3.0
    recorder.call_ended("c1", T0 + 5, reason="caller_hangup", hangup_by="caller",
                        sip_code=200, sip_reason="OK")
    recorder.close()
    read = read_journal(journal.path)
    assert read.closed and read.pid == os.getpid() and read.bad_lines == 0
    assert [op[0] for op in read.ops] == ["call_arrived", "call_node", "call_ended"]


def test_journals_are_applied_and_removed_once_finished_a_live_writers_is_kept(
        tmp_path: Path, store: CallStore) -> None:
    directory = tmp_path / "journal"
    closed = JournalWriter(directory, "w001", 10)
    closed.open(whole_call("closed"))
    closed.close()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    killed = directory / f"w002-{dead_pid}.jsonl"  # as a worker killed -9 leaves it
    with killed.open("wb") as f:
        f.write(encode("journal", worker="w002", pid=int(dead_pid)))
        for method, call_id, at, args in whole_call("killed")[:-1]:
            f.write(encode("store", op=method, call_id=call_id, at=at, args=args))
        f.write(b'{"type": "store", "op": "call_end')  # cut short
    live = JournalWriter(directory, "w003", os.getpid())
    live.open(whole_call("live")[:2])  # our own pid: its worker still runs
    done = replay_journals(store, directory)
    assert (done.journals, done.failed) == (3, 0)
    assert [p.name for p in directory.iterdir()] == [live.path.name]
    for call_id, ended in (("closed", True), ("killed", False), ("live", False)):
        call = store.get_call(call_id)
        assert call is not None and (call.ended_at is not None) is ended
    live.write(whole_call("live")[-1])
    live.close()
    assert replay_journals(store, directory).applied == 1
    assert not any(directory.iterdir())
    call = store.get_call("live")
    assert call is not None and call.end_reason == "caller_hangup"


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
@pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists(), reason="kamailio not installed")
def test_a_call_that_ends_normally_while_the_controller_is_dead_keeps_its_real_end(
        tmp_path: Path) -> None:
    drain_s = 30
    env = {"IVR_WORKER_DRAIN_TIMEOUT_S": str(drain_s)}
    stack = start_stack(tmp_path, workers=1, env=env)
    others: list[int] = []
    try:
        zygote = json.loads(stack.wait_for('"zygote.ready"'))["pid"]
        kamailio = json.loads(stack.wait_for('"front.ready"'))["pid"]
        worker = stack.worker_pids()["w000"]
        others = [worker, zygote]
        call = hold_calls(stack, tmp_path, "survivor", 1,
                          sipp.Caller("survivor").pause(4000).caller_hangs_up(), 17900)
        wait_rows(stack.db, 1, ended=False)
        os.kill(stack.proc.pid, signal.SIGKILL)  # the controller, mid call
        rc, out = finish(call)
        assert rc == 0, out  # the worker kept the call; the caller's BYE got its 200
        assert _wait_gone(worker, drain_s + 15), "the worker never exited"
        # Whatever becomes of the rest after a controller kill, it must go before a restart.
        if not _wait_gone(zygote, 10):
            os.kill(zygote, signal.SIGTERM)
        if not _wait_gone(kamailio, 5):
            os.killpg(kamailio, signal.SIGTERM)
        assert _wait_gone(zygote, 15) and _wait_gone(kamailio, 15)
    finally:
        stack.stop()
        for pid in others:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    again = start_stack(tmp_path, workers=1, env=env)  # the same var dir
    try:
        (record,) = wait_rows(again.db, 1)
        assert (record["end_reason"], record["hangup_by"], record["sip_code"]) == (
            "caller_hangup", "caller", 200)
        assert again.wait_for('"controller.journals_applied"')
        assert not list((again.var_dir / "journal").glob("*.jsonl"))
    finally:
        assert again.stop() == 0
