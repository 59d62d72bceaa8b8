"""The pool shrinks back after a burst: idle workers beyond the floor are retired."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ivr.pool_policy import SlotLoad, to_retire
from ivr.worker import Worker
from tests import sipp
from tests.conftest import StackProcess, start_stack
from tests.test_pool import finish, hold_calls, wait_rows


def idle(slot: int, since: float | None = 0.0, legs: int = 0,
         serving: bool = True) -> SlotLoad:
    return SlotLoad(slot, serving, legs, since if legs == 0 else None)


@pytest.mark.parametrize("slots, now, floor, min_idle, expected", [
    # Five idle for long, floor 1, one idle kept: the four newest slots go.
    ([idle(i) for i in range(5)], 100.0, 1, 1, [4, 3, 2, 1]),
    # Not idle long enough yet.
    ([idle(i, since=95.0) for i in range(5)], 100.0, 1, 1, []),
    # The floor is pool.workers even if no idle worker is wanted.
    ([idle(i) for i in range(5)], 100.0, 3, 0, [4, 3]),
    # Busy workers count toward the floor but are never retired; min idle is kept.
    ([idle(0, legs=2), idle(1, legs=1), idle(2), idle(3), idle(4)], 100.0, 1, 1, [4, 3]),
    # A starting worker counts as live and idle, and is never itself retired.
    ([idle(0, legs=1), idle(1, since=None, serving=False), idle(2)], 100.0, 1, 1, [2]),
    # Only the ones idle long enough, newest first (slot 1 stays, the floor and idle one).
    ([idle(0), idle(1, since=99.0), idle(2)], 100.0, 1, 1, [2, 0]),
])
def test_idle_workers_beyond_the_floor_and_the_idle_headroom_are_retired(
        slots: list[SlotLoad], now: float, floor: int, min_idle: int,
        expected: list[int]) -> None:
    assert to_retire(slots, now, floor_workers=floor, min_idle_workers=min_idle,
                     idle_retire_s=10.0) == expected


def test_idle_retire_s_zero_never_retires() -> None:
    assert to_retire([idle(i) for i in range(5)], 1e9, floor_workers=1, min_idle_workers=0,
                     idle_retire_s=0) == []


def _count(stack: StackProcess, event: str) -> int:
    return sum(f'"{event}"' in line for line in stack.lines)


def _wait_count(stack: StackProcess, event: str, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(stack, event) < n:
        assert time.monotonic() < deadline, (
            f"{_count(stack, event)} {event}, wanted {n}; log:\n" + "".join(stack.lines[-40:]))
        time.sleep(0.1)


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
@pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists(), reason="kamailio not installed")
def test_a_pool_grown_by_a_burst_returns_to_its_floor_and_still_serves(tmp_path: Path) -> None:
    retire_s, calls = 2.0, 4
    stack = start_stack(tmp_path, workers=1, env={
        "IVR_WORKER_MAX_CALLS": "1", "IVR_POOL_MIN_IDLE_WORKERS": "1",
        "IVR_POOL_MAX_WORKERS": "8", "IVR_POOL_IDLE_RETIRE_S": str(retire_s)})
    try:
        _wait_count(stack, "pool.worker_up", 1, 20)  # the floor, idle: the idle one wanted
        held = []
        for i in range(calls):  # each call takes a worker; another idle one is forked
            held.append(hold_calls(stack, tmp_path, f"burst{i}", 1,
                                   sipp.Caller(f"burst{i}").pause(6000).caller_hangs_up(),
                                   17850 + 10 * i))  # sipp takes ports +0..+3
            wait_rows(stack.db, i + 1, ended=False)
            _wait_count(stack, "pool.worker_up", i + 2, 20)
        for proc in held:
            rc, out = finish(proc)
            assert rc == 0, out
        grown = _count(stack, "pool.worker_up")
        assert grown == calls + 1
        # Back to the floor: pool.workers (1), which also leaves the one idle worker wanted.
        # Each goes within idle_retire_s plus a worker heartbeat of its last call's end.
        bound_s = retire_s + Worker.HEARTBEAT_S + 10
        _wait_count(stack, "pool.worker_retired", grown - 1, bound_s)
        retired = [json.loads(x) for x in stack.lines if '"pool.worker_retired"' in x]
        assert all(r["idle_s"] >= retire_s for r in retired)
        assert retired[-1]["workers"] == 1
        assert _count(stack, "pool.calls_failed") == 0
        # Nothing respawns at the floor, and the last worker still takes a call.
        spawned = _count(stack, "pool.spawn")
        rc, out = finish(hold_calls(stack, tmp_path, "after", 1,
                                    sipp.Caller("after").pause(500).caller_hangs_up(), 17890))
        assert rc == 0, out
        assert len(wait_rows(stack.db, calls + 1)) == calls + 1
        assert _count(stack, "pool.spawn") <= spawned + 1  # that call wants one idle again
    finally:
        assert stack.stop() == 0
