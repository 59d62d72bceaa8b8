"""media.rtsched.ClockPriority on real threads of this process (no PJSIP needed)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from media.rtsched import ClockPriority


def rt_allowed() -> bool:
    return subprocess.run(["chrt", "-r", "1", "true"], capture_output=True).returncode == 0


class NamedThread:
    """A thread of this process whose kernel name (comm) is ``name``, until stopped.

    With ``name_after``, the thread runs under its parent's name until :meth:`name_now` (or
    that long), as a PJLIB thread does until it first runs and names itself.
    """

    def __init__(self, name: str, name_after: float = 0.0) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._name_now = threading.Event()
        self.named = threading.Event()
        self.tid = 0
        self._thread = threading.Thread(
            target=self._run, args=(name, name_after), daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if not name_after:
            self.named.wait(5)

    def _run(self, name: str, name_after: float) -> None:
        self.tid = threading.get_native_id()
        self._ready.set()
        if name_after:
            self._name_now.wait(name_after)
        Path(f"/proc/self/task/{self.tid}/comm").write_text(name)
        self.named.set()
        self._stop.wait(30)

    def name_now(self) -> None:
        self._name_now.set()
        self.named.wait(5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def clock() -> Iterator[NamedThread]:
    t = NamedThread("clock")
    yield t
    t.stop()


def test_priority_zero_leaves_the_clock_alone(clock: NamedThread) -> None:
    assert ClockPriority(0).apply() is None
    assert os.sched_getscheduler(clock.tid) == os.SCHED_OTHER


def test_out_of_range_priorities_are_refused() -> None:
    with pytest.raises(ValueError, match="outside 0..99"):
        ClockPriority(100)


def test_no_clock_thread_yet_is_not_an_error() -> None:
    assert ClockPriority(5).apply() is None


@pytest.mark.skipif(not rt_allowed(), reason="no CAP_SYS_NICE / RLIMIT_RTPRIO here")
def test_the_clock_thread_gets_sched_rr_and_a_new_one_is_found(clock: NamedThread) -> None:
    other = NamedThread("worker")
    try:
        prio = ClockPriority(5)
        assert prio.apply() == clock.tid
        assert os.sched_getscheduler(clock.tid) == os.SCHED_RR
        assert os.sched_getparam(clock.tid).sched_priority == 5
        assert os.sched_getscheduler(other.tid) == os.SCHED_OTHER  # only the clock
        assert prio.apply() == clock.tid  # still alive: nothing to do
        clock.stop()  # PJSUA stops the clock when idle and starts a new thread later
        second = NamedThread("clock")
        try:
            assert prio.apply() == second.tid
            assert os.sched_getscheduler(second.tid) == os.SCHED_RR
        finally:
            second.stop()
    finally:
        other.stop()


def test_a_refusal_is_logged_once_and_then_left_alone(
        clock: NamedThread, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def refuse(tid: int, policy: int, param: os.sched_param) -> None:
        calls.append(tid)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    prio = ClockPriority(10)
    with caplog.at_level(logging.WARNING, logger="media.rtsched"):
        assert prio.apply() is None
        assert prio.apply() is None
    assert calls == [clock.tid]
    assert not prio.enabled
    assert [r.getMessage() for r in caplog.records] == [
        "media clock left at normal priority: SCHED_RR 10 refused (Operation not permitted); "
        "give the service CAP_SYS_NICE or LimitRTPRIO=10, or set media.realtime_priority: 0"]


@pytest.mark.skipif(not rt_allowed(), reason="no CAP_SYS_NICE / RLIMIT_RTPRIO here")
def test_a_clock_thread_that_names_itself_late_is_raised_by_polling() -> None:
    late = NamedThread("clock", name_after=10)  # running, not yet called "clock"
    try:
        prio = ClockPriority(5)
        prio.expect()
        assert prio.pending  # not found yet: the pump keeps looking
        prio.poll()
        assert prio.pending and os.sched_getscheduler(late.tid) == os.SCHED_OTHER
        late.name_now()
        prio.poll()
        assert not prio.pending
        assert os.sched_getscheduler(late.tid) == os.SCHED_RR
        assert prio.raised_tid == late.tid
    finally:
        late.stop()


def test_an_expected_clock_that_never_comes_is_given_up(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    now = [1000.0]
    monkeypatch.setattr("media.rtsched.time.monotonic", lambda: now[0])
    # a process with no threads at all: a clock thread an earlier test left in this pytest
    # process (they run PJSIP in-process) must not be found
    prio = ClockPriority(5, task_dir=str(tmp_path))
    prio.expect()
    assert prio.pending
    now[0] += ClockPriority.EXPECT_S - 0.1
    prio.poll()
    assert prio.pending
    now[0] += 0.2
    prio.poll()
    assert not prio.pending


def test_nothing_is_expected_when_priority_is_zero() -> None:
    prio = ClockPriority(0)
    prio.expect()
    assert not prio.pending
