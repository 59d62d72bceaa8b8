"""The whole stack (`ivr run`): Kamailio in front of a pool of forked workers."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import FLOWS, StackProcess, stack_processes, start_stack

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists(), reason="kamailio not installed"),
]


def rows(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = con.execute("SELECT * FROM calls ORDER BY arrived_at").fetchall()
    con.close()
    return out


def wait_rows(db: Path, n: int, ended: bool = True, timeout_s: float = 20.0) -> list[sqlite3.Row]:
    deadline = time.monotonic() + timeout_s
    got: list[sqlite3.Row] = []
    while time.monotonic() < deadline:
        if db.exists():
            got = rows(db)
            if len(got) >= n and (not ended or all(r["ended_at"] for r in got)):
                return got
        time.sleep(0.1)
    raise AssertionError(f"wanted {n} call records (ended={ended}), have {len(got)}: "
                         f"{[dict(r) for r in got]}")


def hold_calls(stack: StackProcess, tmp_path: Path, name: str, n: int, caller: sipp.Caller,
               local_port: int) -> subprocess.Popen[str]:
    scenario = tmp_path / f"{name}.xml"
    scenario.write_text(caller.render())
    assert sipp.SIPP is not None
    return subprocess.Popen(
        [sipp.SIPP, stack.target, "-sf", str(scenario), "-i", "127.0.0.1",
         "-p", str(local_port), "-mp", str(local_port + 10000), "-m", str(n), "-l", str(n),
         "-r", "50", "-timeout", "40s", "-nostdin"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], timeout_s: float = 40) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def test_calls_through_kamailio_spread_over_several_workers(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=3)
    try:
        # Junk on the controller's socket is refused and logged; the stack keeps serving.
        for junk in (b"garbage\n", b'{"type": "hello", "role": "worker", "protocol": 99}\n',
                     b'{"type": "hello", "role": "worker", "protocol": 1, "slot": 999}\n'):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(stack.var_dir / "run" / "controller.sock"))
                s.sendall(junk)
                s.settimeout(5)
                assert s.recv(100) == b""  # the controller closed it
        stack.wait_for("broke the protocol")
        bg = hold_calls(stack, tmp_path, "spread", 6,
                        sipp.Caller("spread").pause(3000).caller_hangs_up(), 17200)
        rc, out = finish(bg)
        assert rc == 0, out
        calls = wait_rows(stack.db, 6)
        workers = {r["worker"] for r in calls}
        assert len(workers) >= 2, workers
        assert all(r["end_reason"] == "caller_hangup" for r in calls)
        assert all(r["answered_at"] is not None for r in calls)
    finally:
        assert stack.stop() == 0


def test_worker_killed_mid_call_fails_only_its_calls_and_is_replaced(tmp_path: Path) -> None:
    # An IVR-only flow: 4 callers a worker (the default flow's queues make it 2, and the
    # six calls after the kill would not all fit on two workers).
    stack = start_stack(tmp_path, workers=2, flow=FLOWS / "basic.yaml")
    try:
        bg = hold_calls(stack, tmp_path, "victims", 4,
                        sipp.Caller("victims").pause(6000).caller_hangs_up(), 17300)
        calls = wait_rows(stack.db, 4, ended=False)
        by_worker: dict[str, int] = {}
        for r in calls:
            by_worker[r["worker"]] = by_worker.get(r["worker"], 0) + 1
        assert len(by_worker) == 2, by_worker  # load balancing put calls on both
        victim = calls[0]["worker"]
        pid = stack.worker_pids()[victim]
        os.kill(pid, signal.SIGKILL)
        stack.wait_for('"pool.calls_failed"')
        finish(bg, 60)  # the dead worker's callers fail (their BYE times out); others do not
        calls = wait_rows(stack.db, 4)
        for r in calls:
            if r["worker"] == victim:
                assert (r["end_reason"], r["hangup_by"]) == ("failure", "system")
                assert "killed by signal 9" in r["sip_reason"]
            else:
                assert (r["end_reason"], r["hangup_by"]) == ("caller_hangup", "caller")
        # A fresh worker took the slot, and new calls succeed.
        deadline = time.monotonic() + 10
        while stack.worker_pids()[victim] == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack.worker_pids()[victim] != pid
        time.sleep(2.5)  # let Kamailio's OPTIONS probe see the new worker
        after = hold_calls(stack, tmp_path, "after", 6,
                           sipp.Caller("after").pause(1000).caller_hangs_up(), 17400)
        rc, out = finish(after)
        assert rc == 0, out
        assert len(wait_rows(stack.db, 10)) == 10
    finally:
        assert stack.stop() == 0


def test_kamailio_stops_sending_to_a_worker_that_stops_answering_options(
        tmp_path: Path) -> None:
    # an IVR-only flow: four callers a worker (the default flow's queues take two)
    stack = start_stack(tmp_path, workers=3, flow=FLOWS / "basic.yaml")
    frozen = stack.worker_pids()["w000"]
    os.kill(frozen, signal.SIGSTOP)
    try:
        stack_probe_s = 1
        time.sleep(stack_probe_s * 4 + 1)
        bg = hold_calls(stack, tmp_path, "skip", 6,
                        sipp.Caller("skip").pause(500).caller_hangs_up(), 17500)
        rc, out = finish(bg)
        assert rc == 0, out
        calls = wait_rows(stack.db, 6)
        assert "w000" not in {r["worker"] for r in calls}
    finally:
        os.kill(frozen, signal.SIGCONT)
        assert stack.stop() == 0


def test_graceful_stop_of_the_stack_ends_running_calls_cleanly(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": "2"})
    bg = hold_calls(stack, tmp_path, "held", 3, sipp.Caller("held").ivr_hangs_up(30000), 17600)
    try:
        wait_rows(stack.db, 3, ended=False)
        pids = list(stack.worker_pids().values())
        stack.proc.send_signal(signal.SIGINT)  # as Ctrl-C in `make run`
        rc, out = finish(bg)
        assert rc == 0, out  # every caller got a BYE and answered it
        assert stack.proc.wait(timeout=30) == 0
    finally:
        stack.stop()
    calls = wait_rows(stack.db, 3)
    assert all((r["end_reason"], r["hangup_by"]) == ("shutdown", "system") for r in calls)
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert not stack_processes(stack.var_dir), "processes of the stack outlived its stop"


SWAP_FLOW = """\
name: swap
version: {version}
language: en-US
start: hold
nodes:
  hold:
    type: menu
    prompts: [please_wait]
    choices: {{"1": bye}}
    timeout_ms: 1000
    max_retries: {retries}
    on_failure: bye
  bye: {{type: hangup, prompts: [goodbye]}}
"""


def test_flow_swapped_while_calls_run_keeps_running_calls_on_their_version(
        tmp_path: Path) -> None:
    flow = tmp_path / "swap.yaml"
    flow.write_text(SWAP_FLOW.format(version=1, retries=6))
    stack = start_stack(tmp_path, workers=2, flow=flow)
    try:
        first = hold_calls(stack, tmp_path, "first", 1,
                           sipp.Caller("first").ivr_hangs_up(40000), 17700)
        wait_rows(stack.db, 1, ended=False)
        flow.write_text(SWAP_FLOW.format(version=2, retries=0))
        done = stack.ivr("reload")
        assert done.returncode == 0, done.stderr
        stack.wait_for('"flow.reload"')
        deadline = time.monotonic() + 10
        while sum('"worker.reloaded"' in line for line in stack.lines) < 2:
            assert time.monotonic() < deadline, "the workers never reloaded"
            time.sleep(0.1)
        second = hold_calls(stack, tmp_path, "second", 1,
                            sipp.Caller("second").ivr_hangs_up(20000), 17710)
        assert finish(second)[0] == 0
        # A broken flow is refused whole: by the CLI, and by the controller on SIGHUP.
        flow.write_text(SWAP_FLOW.format(version=3, retries=0).replace("bye}}", "nowhere}}")
                        .replace("on_failure: bye", "on_failure: nowhere"))
        refused = stack.ivr("reload")
        assert refused.returncode == 1
        assert "not a node of this flow" in refused.stderr
        pid = int((stack.var_dir / "run" / "controller.pid").read_text())
        os.kill(pid, signal.SIGHUP)
        stack.wait_for('"flow.reload_refused"')
        third = hold_calls(stack, tmp_path, "third", 1,
                           sipp.Caller("third").ivr_hangs_up(20000), 17720)
        assert finish(third)[0] == 0
        rc, out = finish(first, 60)
        assert rc == 0, out
        calls = wait_rows(stack.db, 3)
    finally:
        assert stack.stop() == 0
    versions = [(r["flow_version"], r["end_reason"]) for r in calls]
    assert versions == [(1, "normal"), (2, "normal"), (2, "normal")]
    first_events = sqlite3.connect(stack.db).execute(
        "SELECT COUNT(*) FROM call_events WHERE call_id = ? AND kind = 'menu.no_input'",
        (calls[0]["call_id"],)).fetchone()[0]
    assert first_events == 7  # version 1's six retries, not version 2's none
