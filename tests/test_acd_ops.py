"""Operators drive the running stack's ACD from the command line: agents' states, wrap-up
codes, and the queues with their figures; a stack that is not running says so."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, start_stack, wait_no_stack_processes


def test_agent_state_wrapup_show_and_queue_show_against_a_running_stack(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        ready = stack.ivr("agent", "state", "1001", "ready")
        assert ready.returncode == 0, ready.stderr
        assert "ready" in ready.stdout
        paused = stack.ivr("agent", "state", "1002", "not-ready", "--reason", "lunch")
        assert paused.returncode == 0, paused.stderr
        assert "not_ready (lunch)" in paused.stdout
        bad = stack.ivr("agent", "state", "1002", "not-ready", "--reason", "napping")
        assert bad.returncode == 1
        assert "unknown not-ready reason 'napping'" in bad.stderr
        nobody = stack.ivr("agent", "state", "9999", "ready")
        assert nobody.returncode == 1 and "no agent '9999'" in nobody.stderr
        no_call = stack.ivr("agent", "wrapup", "1001", "sales/order")
        assert no_call.returncode == 1 and "no call" in no_call.stderr
        shown = stack.ivr("queue", "show", "sales", "--json")
        assert shown.returncode == 0, shown.stderr
        queue = json.loads(shown.stdout)["queues"][0]
        states = {a["id"]: a["state"] for a in queue["agents"]}
        assert states["1001"] == "ready"
        assert queue["figures"]["calls_waiting"] == 0
        never = next(a for a in queue["agents"] if a["state"] == "logged_out")
        assert never["in_state_s"] is None  # not "since 1970"
        text = stack.ivr("queue", "show")
        assert text.returncode == 0 and "support (skills)" in text.stdout
        agent = stack.ivr("agent", "show", "1002")
        assert agent.returncode == 0 and "not_ready (lunch)" in agent.stdout
        missing = stack.ivr("queue", "show", "nope")
        assert missing.returncode == 1 and "no queue 'nope'" in missing.stderr
    finally:
        assert stack.stop() == 0


def test_an_agent_added_at_the_running_stack_can_sign_in_at_once(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        before = stack.ivr("agent", "state", "2001", "ready")
        assert before.returncode == 1 and "no agent '2001'" in before.stderr
        added = stack.ivr("agent", "add", "2001", "--name", "Dee", "--password",
                          "pass-2001-word", "--queues", "sales:4,nosuch:3")
        assert added.returncode == 0, added.stderr
        assert "has taken the change" in added.stdout
        ready = stack.ivr("agent", "state", "2001", "ready")
        assert ready.returncode == 0, ready.stderr
        shown = json.loads(stack.ivr("queue", "show", "sales", "--json").stdout)
        assert {"id": "2001", "state": "ready"}.items() <= next(
            a for a in shown["queues"][0]["agents"] if a["id"] == "2001").items()
        refused = stack.ivr("agent", "remove", "2001")
        assert refused.returncode == 1
        assert "is ready at the running stack: sign them out first" in refused.stderr
        assert "2001" in stack.ivr("agent", "list").stdout  # nothing changed
        assert stack.ivr("agent", "state", "2001", "logged-out").returncode == 0
        removed = stack.ivr("agent", "remove", "2001")
        assert removed.returncode == 0, removed.stderr
        assert "has taken the change" in removed.stdout
        gone = stack.ivr("agent", "state", "2001", "ready")
        assert gone.returncode == 1 and "no agent '2001'" in gone.stderr
    finally:
        assert stack.stop() == 0


def test_agents_states_survive_a_killed_controller(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        assert stack.ivr("agent", "state", "1001", "ready").returncode == 0
        assert stack.ivr("agent", "state", "1002", "not-ready", "--reason",
                         "lunch").returncode == 0
        assert stack.ivr("agent", "state", "1003", "ready").returncode == 0
        assert stack.ivr("agent", "state", "1003", "logged-out").returncode == 0
        # the states are in the queue log once the writer thread has had its batch
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(stack.db)) as db:
                if db.execute("SELECT count(*) FROM queue_log WHERE agent_id = '1003' AND "
                              "event = 'AGENTLOGOFF'").fetchone()[0]:
                    break
            time.sleep(0.1)
        os.kill(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(30)
        wait_no_stack_processes(stack.var_dir, timeout_s=60)
    finally:
        stack.stop()
    again = start_stack(tmp_path, same_as=stack)
    try:
        shown = json.loads(again.ivr("queue", "show", "--json").stdout)
        states = {a["id"]: (a["state"], a["reason"]) for q in shown["queues"]
                  for a in q["agents"]}
        assert states["1001"] == ("ready", "")
        assert states["1002"] == ("not_ready", "lunch")
        assert states["1003"] == ("logged_out", "")
        assert any('"acd.restored"' in line for line in again.lines)
    finally:
        assert again.stop() == 0


def test_ops_commands_say_when_the_stack_is_not_running(tmp_path: Path) -> None:
    env = {"IVR_PATHS_VAR_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "ivr.cli", "queue", "show"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "the stack is not running" in done.stderr
