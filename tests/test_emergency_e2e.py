"""Storm mode end to end: ``ivr run`` (Kamailio, controller, a worker), ``ivr emergency
on|show|off`` through the ops socket, sipp callers into a queue: with the message on the
caller hears it before the queue (the worker's play events say so), with it off not;
every switch is a queue-log row. One stack for the module."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import StackProcess, start_stack
from tests.test_acd_e2e import CALLER_HZ, call_events, queue_log, wait_until
from tests.tone_caller import ToneCaller

pytestmark = pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    tmp = tmp_path_factory.mktemp("storm")
    flow = tmp / "flow.yaml"  # the queue's greeting, then the queue (nobody signed in)
    flow.write_text("""\
name: storm
version: 1
language: en-US
start: q
nodes:
  q: {type: queue, queue: support, prompts: [support], on_unavailable: bye}
  bye: {type: hangup}
""")
    acd = tmp / "acd.yaml"
    acd.write_text("""\
queues:
  support: {when_no_agents: overflow}
agents:
  "1001": {name: Ann, queues: {support: 5}}
""")
    s = start_stack(tmp, workers=1, flow=flow, env={"IVR_PATHS_ACD": str(acd)})
    try:
        yield s
    finally:
        assert s.stop() == 0


def _plays(stack: StackProcess, call_id: str) -> list[str]:
    events = wait_until("the call's end", lambda: any(
        k == "queue.exit" for k, _ in call_events(stack, call_id)) and call_events(
        stack, call_id))
    return [p for k, d in events if k == "play" for p in d["prompts"]]


def _call(stack: StackProcess, tmp_path: Path, name: str) -> str:
    before = {c for c, in _enter_rows(stack)}
    caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=30000,
                        name=name, ivr_hangs_up=True).start()
    call_id = wait_until("a new caller in the queue", lambda: next(
        (c for c, in _enter_rows(stack) if c not in before), None))
    assert caller.wait().ok  # nobody signed in: on_unavailable, the IVR hangs up
    return str(call_id)


def _enter_rows(stack: StackProcess) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        return db.execute("SELECT call_id FROM queue_log WHERE event IN "
                          "('ENTERQUEUE', 'JOINEMPTY')").fetchall()


def test_storm_mode_on_a_caller_hears_the_message_before_the_queue_then_off(
        stack: StackProcess, tmp_path: Path) -> None:
    bad = stack.ivr("emergency", "on", "support", "--prompt", "no_such_prompt")
    assert bad.returncode == 1 and "'no_such_prompt' is not in prompt set" in bad.stderr
    on = stack.ivr("emergency", "on", "support", "--prompt", "outage_area", "--expires", "2h")
    assert on.returncode == 0, on.stderr
    assert "support: prompt outage_area until" in on.stdout
    stack.wait_for('"worker.emergencies"', timeout_s=10)  # the worker was told
    shown = stack.ivr("emergency", "show")
    assert shown.returncode == 0 and "support: prompt outage_area" in shown.stdout

    heard = _call(stack, tmp_path, "storm_on")
    plays = _plays(stack, heard)
    assert plays[:2] == ["en-US:outage_area", "en-US:support"], plays  # before the greeting
    assert any(k == "queue.emergency" for k, _ in call_events(stack, heard))

    off = stack.ivr("emergency", "off", "support")
    assert off.returncode == 0 and "no emergency message is on" in off.stdout
    quiet = _call(stack, tmp_path, "storm_off")
    assert _plays(stack, quiet)[:1] == ["en-US:support"]
    switches = [e for e, _ in queue_log(stack) if e.startswith("EMERGENCY")]
    assert switches == ["EMERGENCYON", "EMERGENCYOFF"]
