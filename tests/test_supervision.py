"""The process tree of `ivr run`: one stack per var dir, every death noticed and logged,
every part restarted or stopped, and nothing left behind, whatever is killed."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import (
    ROOT,
    StackProcess,
    stack_processes,
    stack_settings,
    start_stack,
    wait_no_stack_processes,
)
from tests.test_pool import finish, hold_calls, wait_rows

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists(), reason="kamailio not installed"),
]

DRAIN_S = 3.0  # worker.drain_timeout_s in these tests
# A stack whose controller died is gone once its workers have drained (drain_timeout_s,
# +15 s the zygote allows them), and Kamailio has stopped (10 s): with a margin for a busy
# machine.
GONE_AFTER_S = DRAIN_S + 15 + 10 + 30


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a test leaves running (it failed half-way) is killed, so it cannot disturb
    the tests after it; the tests themselves assert that nothing is left."""
    yield
    for pid in stack_processes(tmp_path / "var"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def events(stack: StackProcess, name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stack.lines if f'"event": "{name}"' in line]


def kamailio_pid(stack: StackProcess) -> int:
    return int((stack.var_dir / "run" / "kamailio" / "kamailio.pid").read_text())


def zygote_pid(stack: StackProcess) -> int:
    return int((stack.var_dir / "run" / "zygote.pid").read_text())


def call_through_front(stack: StackProcess, tmp_path: Path, name: str, port: int) -> None:
    """One short call through Kamailio that must succeed."""
    rc, out = finish(hold_calls(stack, tmp_path, name, 1,
                                sipp.Caller(name).pause(500).caller_hangs_up(), port))
    assert rc == 0, out


def stop_and_check_nothing_left(stack: StackProcess) -> None:
    assert stack.stop() == 0
    wait_no_stack_processes(stack.var_dir, timeout_s=10)


def test_a_second_start_is_refused_before_it_touches_the_running_stack(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    run = stack.var_dir / "run"
    try:
        held = hold_calls(stack, tmp_path, "held", 1,
                          sipp.Caller("held").pause(6000).caller_hangs_up(), 17800)
        wait_rows(stack.db, 1, ended=False)
        before = {name: (run / name).stat().st_ino for name in ("controller.pid",
                                                                  "controller.sock")}
        second = subprocess.run([sys.executable, "-m", "ivr.cli", "run"], cwd=ROOT,
                                env=stack.env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert "a stack is already running" in second.stderr
        assert f"controller pid {stack.proc.pid}" in second.stderr
        # Nothing of the running stack was touched: its files, its live call, its reload.
        assert {name: (run / name).stat().st_ino for name in before} == before
        assert wait_rows(stack.db, 1, ended=False)[0]["ended_at"] is None
        reload = stack.ivr("reload")
        assert reload.returncode == 0, reload.stderr
        stack.wait_for('"flow.reload"')
        rc, out = finish(held)
        assert rc == 0, out
        call = wait_rows(stack.db, 1)[0]
        assert (call["end_reason"], call["hangup_by"]) == ("caller_hangup", "caller")
    finally:
        stop_and_check_nothing_left(stack)


def test_the_store_the_front_log_and_the_run_dir_are_private(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        call_through_front(stack, tmp_path, "private", 17810)
        wait_rows(stack.db, 1)
        var = stack.var_dir
        files = [var / "ivr.sqlite3", var / "run" / "kamailio" / "kamailio.log"]
        files += [f for f in (var / "ivr.sqlite3-wal", var / "ivr.sqlite3-shm") if f.exists()]
        assert len(files) >= 3  # the WAL is there while the store is open
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert modes == {f.name: 0o600 for f in files}
        dirs = {d: stat.S_IMODE((var / d).stat().st_mode) for d in ("run", "run/kamailio")}
        assert dirs == {"run": 0o700, "run/kamailio": 0o700}
    finally:
        stop_and_check_nothing_left(stack)


def test_a_killed_controller_takes_its_stack_down_after_the_calls_drain(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    held = hold_calls(stack, tmp_path, "orphaned", 2,
                      sipp.Caller("orphaned").ivr_hangs_up(40000), 17820)
    try:
        wait_rows(stack.db, 2, ended=False)
        front = kamailio_pid(stack)
        os.kill(stack.proc.pid, signal.SIGKILL)
        # The workers end their calls after drain_timeout_s, and the BYEs still pass
        # through Kamailio: each caller gets one and answers it.
        rc, out = finish(held, 60)
        assert rc == 0, out
        wait_no_stack_processes(stack.var_dir, GONE_AFTER_S)
        stack.wait_for('"zygote.controller_lost"')
        stopped = stack.wait_for('"zygote.front_stopped"')
        assert front in json.loads(stopped)["pids"]
    finally:
        stack.stop()
    again = start_stack(tmp_path, same_as=stack)
    try:
        assert not events(again, "controller.stale_found")
        call_through_front(again, tmp_path, "after", 17830)
    finally:
        stop_and_check_nothing_left(again)


def test_a_killed_controller_whose_workers_outlived_a_zygote_still_drains_them_first(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    try:
        os.kill(zygote_pid(stack), signal.SIGKILL)
        stack.wait_for('"zygote.restarted"', timeout_s=60)
        # The calls go to the first zygote's workers; the second zygote has no children.
        held = hold_calls(stack, tmp_path, "outlived", 2,
                          sipp.Caller("outlived").ivr_hangs_up(40000), 17890)
        wait_rows(stack.db, 2, ended=False)
        os.kill(stack.proc.pid, signal.SIGKILL)
        rc, out = finish(held, 60)
        assert rc == 0, out  # Kamailio was still there for their BYEs
        wait_no_stack_processes(stack.var_dir, GONE_AFTER_S)
    finally:
        stack.stop()


def test_a_start_after_a_killed_controller_replaces_what_it_left_running(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    # Controller and zygote both killed: nobody is left to stop Kamailio.
    zygote = zygote_pid(stack)
    front = kamailio_pid(stack)
    os.kill(stack.proc.pid, signal.SIGKILL)
    os.kill(zygote, signal.SIGKILL)
    stack.stop()
    assert front in stack_processes(stack.var_dir)
    again = start_stack(tmp_path, same_as=stack)
    try:
        found = events(again, "controller.stale_found")
        assert len(found) == 1 and f"kamailio {front}" in str(found[0]["processes"])
        assert events(again, "controller.stale_replaced")
        assert front not in stack_processes(stack.var_dir)
        call_through_front(again, tmp_path, "replaced", 17840)
    finally:
        stop_and_check_nothing_left(again)


def test_a_killed_front_is_restarted_with_the_workers_and_takes_calls(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2)
    try:
        old = kamailio_pid(stack)
        os.kill(old, signal.SIGKILL)
        restarted = json.loads(stack.wait_for('"front.restarted"', timeout_s=30))
        assert restarted["exit"] == "killed by signal 9 (SIGKILL)"
        assert restarted["serving"] == 2 and restarted["pid"] != old
        exited = events(stack, "front.exited")
        assert [(e["pid"], e["level"]) for e in exited] == [(old, "ERROR")]
        call_through_front(stack, tmp_path, "refront", 17850)
        calls = wait_rows(stack.db, 1)
        assert calls[0]["end_reason"] == "caller_hangup"
    finally:
        stop_and_check_nothing_left(stack)


def test_a_killed_zygote_is_restarted_and_a_slot_that_dies_later_is_served_again(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2)
    try:
        first = zygote_pid(stack)
        os.kill(first, signal.SIGKILL)
        restarted = json.loads(stack.wait_for('"zygote.restarted"', timeout_s=60))
        assert restarted["after"] == "killed by signal 9 (SIGKILL)"
        assert restarted["pid"] != first
        # The first zygote's workers served on; one of them now dies.
        victim = stack.worker_pids()["w000"]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while stack.worker_pids()["w000"] == victim:
            assert time.monotonic() < deadline, "slot w000 was never served again"
            time.sleep(0.1)
        time.sleep(2.5)  # let Kamailio's OPTIONS probe see the new worker
        for i in range(2):
            call_through_front(stack, tmp_path, f"refill{i}", 17860 + 10 * i)
    finally:
        stop_and_check_nothing_left(stack)


def test_signals_during_the_stop_are_logged_and_the_stop_still_completes(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    held = hold_calls(stack, tmp_path, "patient", 1,
                      sipp.Caller("patient").ivr_hangs_up(40000), 17880)
    try:
        wait_rows(stack.db, 1, ended=False)
        stack.proc.send_signal(signal.SIGINT)
        stack.wait_for('"controller.stopping"')
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            stack.proc.send_signal(sig)
            stack.wait_for(f'"signal": "{sig.name}", "action": "ignored')
        assert stack.proc.wait(timeout=60) == 0
        rc, out = finish(held)
        assert rc == 0, out
        assert (wait_rows(stack.db, 1)[0]["end_reason"]) == "shutdown"
        stack.wait_for('"controller.exit"')
    finally:
        stack.stop()
    wait_no_stack_processes(stack.var_dir, timeout_s=10)


def test_a_stack_whose_stderr_reader_went_away_logs_on_in_var_log(tmp_path: Path) -> None:
    _port, _base, env = stack_settings(tmp_path, workers=1)
    var_dir = tmp_path / "var"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "run"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b'"controller.ready"' in line:
                break
        proc.stdout.close()  # what read the stack's output is gone: writes get EPIPE
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_no_stack_processes(var_dir, timeout_s=10)
    log = var_dir / "log" / "ivr.log"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    names = [line.get("event") for line in lines]
    assert names[0] == "log.stderr_lost" and "BrokenPipeError" in str(lines[0]["error"])
    assert names.index("controller.stopped") < names.index("controller.exit")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def _read_until(fd: int, text: bytes, timeout_s: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text not in seen:
        assert time.monotonic() < deadline, f"never saw {text!r} in: {seen[-3000:]!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 65536)
    return seen


def test_sighup_reloads_but_stops_the_stack_once_its_terminal_is_gone(tmp_path: Path) -> None:
    _port, _base, env = stack_settings(tmp_path, workers=1)
    pid, master = pty.fork()  # `make run` in a terminal: the stack's controlling tty
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "ivr.cli", "run"], env)
    try:
        _read_until(master, b'"controller.ready"')
        os.kill(pid, signal.SIGHUP)  # as `ivr reload` does
        _read_until(master, b'"flow.reload"')
        os.close(master)  # the terminal window closes; its shell sends its jobs SIGHUP
        master = -1
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the stack kept running without its terminal"
            time.sleep(0.2)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if master >= 0:
            os.close(master)
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    wait_no_stack_processes(tmp_path / "var", timeout_s=10)
    log = (tmp_path / "var" / "log" / "ivr.log").read_text()
    assert '"action": "stop: the terminal' in log and '"controller.exit"' in log
