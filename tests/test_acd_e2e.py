"""The contact center end to end: ``ivr run`` (Kamailio, controller, workers), agents'
baresip phones registered through Kamailio with digest, sipp callers into a queue.

Each caller sends 440 Hz and keeps what it hears; each agent's phone sends 1000 Hz and
records what it hears: audio must pass both ways through the worker's bridge. The queue
log, the call record (CDR) and the recording are checked against what happened."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import sipp
from tests.agent_phone import AgentPhone, baresip_agent
from tests.conftest import StackProcess, start_stack
from tests.test_interop_baresip import BARESIP, MODULE_DIR
from tests.tone_caller import ToneCaller
from tests.tones import measure, tone_share, write_tone_wav

FLOW = Path(__file__).parent / "flows" / "acd.yaml"  # straight into queue `support`
CALLER_HZ, AGENT_HZ = 440.0, 1000.0
PASSWORD = "agent-pass-e2e"
WAIT_S = 30.0
AGENT_ROWS = {"AGENTSTATE", "AGENTLOGIN", "AGENTLOGOFF", "PAUSE", "UNPAUSE", "WRAPUP"}

pytestmark = [
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(BARESIP is None or MODULE_DIR is None, reason="baresip not installed"),
]


def acd_file(tmp_path: Path, strategy: str = "linear", record: bool = True) -> Path:
    path = tmp_path / "acd.yaml"
    path.write_text(f"""\
queues:
  support:
    strategy: {strategy}
    ring_timeout_s: 6
    wrapup_s: 1
    autopause_after: 1
    announce_every_s: 0
    when_no_agents: wait
    record: {str(record).lower()}
agents:
  "1001": {{name: Ann Agent, queues: {{support: 5}}}}
  "1002": {{name: Ben Agent, queues: {{support: 5}}}}
call_reasons:
  support: {{label: Support, children: {{fixed: Fixed}}}}
""")
    return path


@contextlib.contextmanager
def contact_center(tmp_path: Path, strategy: str = "linear") -> Iterator[StackProcess]:
    stack = start_stack(tmp_path, workers=1, flow=FLOW, env={
        "IVR_PATHS_ACD": str(acd_file(tmp_path, strategy))})
    try:
        for agent_id in ("1001", "1002"):
            added = stack.ivr("agent", "add", agent_id, "--name", f"Agent {agent_id}",
                              "--password", PASSWORD)
            assert added.returncode == 0, added.stderr
        yield stack
    finally:
        assert stack.stop() == 0


@contextlib.contextmanager
def agent(tmp_path: Path, stack: StackProcess, agent_id: str, **kw: Any
          ) -> Iterator[AgentPhone]:
    tone = write_tone_wav(tmp_path / f"agent-{agent_id}.wav", AGENT_HZ, 60)
    ports = (22700, 22719) if agent_id == "1001" else (22720, 22739)
    with baresip_agent(tmp_path, stack.port, agent_id, PASSWORD, f"agent{agent_id}",
                       play=tone, rtp_ports=ports, **kw) as phone:
        phone.wait_registered()
        ready = stack.ivr("agent", "state", agent_id, "ready")
        assert ready.returncode == 0, ready.stderr
        yield phone


def queue_log(stack: StackProcess, call_id: str | None = None) -> list[tuple[str, str]]:
    """(event, agent) rows of the queue log, in order (of one call if given)."""
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        rows = db.execute("SELECT event, agent_id, call_id FROM queue_log ORDER BY id")
        return [(e, a) for e, a, c in rows if call_id is None or c == call_id]


def wait_until(what: str, check: Any, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def the_call_id(stack: StackProcess) -> str:
    def joined() -> str | None:
        with contextlib.closing(sqlite3.connect(stack.db)) as db:
            row = db.execute("SELECT call_id FROM queue_log WHERE event = 'ENTERQUEUE' "
                             "ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    return str(wait_until("the caller entered the queue", joined))


def agent_state(stack: StackProcess, agent_id: str) -> tuple[str, str]:
    data = json.loads(stack.ivr("queue", "show", "support", "--json").stdout)
    [a] = [x for x in data["queues"][0]["agents"] if x["id"] == agent_id]
    return a["state"], a["reason"]


def share(pcm: np.ndarray, hz: float) -> float:
    return tone_share(pcm.astype(np.int16), hz)


def test_a_caller_and_an_agent_hear_each_other_and_the_records_agree(tmp_path: Path) -> None:
    with contact_center(tmp_path) as stack, agent(tmp_path, stack, "1001") as phone:
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=9000,
                            name="e2e_caller").start()
        phone.wait_established()
        call_id = the_call_id(stack)
        time.sleep(2.5)
        bridged_at = time.monotonic() - 1.5
        at_caller = caller.heard(since_s=bridged_at)
        result = caller.wait()  # the caller hangs up after 9 s
        assert result.ok, result.output
        phone.wait_ended()
        wait_until("the agent in wrap-up and ready again",
                   lambda: agent_state(stack, "1001") == ("ready", ""))
        rows = wait_until("the final row", lambda: [
            r for r in queue_log(stack, call_id) if r[0] == "COMPLETECALLER"] and
            queue_log(stack, call_id))
        invite = phone.invites()[0]
    assert share(at_caller, AGENT_HZ) > 0.5, "the caller does not hear the agent's tone"
    [heard] = phone.recordings()
    [agent_heard] = measure(heard, (CALLER_HZ, AGENT_HZ), skip_s=1.0)
    assert agent_heard.holds(CALLER_HZ), f"the agent does not hear the caller: {agent_heard}"
    calls = [e for e, _ in rows if e not in AGENT_ROWS]
    assert calls == ["ENTERQUEUE", "RING", "CONNECT", "COMPLETECALLER"]
    # the agent's side of the same call: reserved, on the call, wrap-up, ready
    assert [e for e, _ in rows if e in AGENT_ROWS] == ["AGENTSTATE"] * 4
    assert all(a == "1001" for e, a in rows if e != "ENTERQUEUE")
    # the agent's phone got the call's data and where to look it up
    assert invite.header("X-Queue") == "support"
    assert call_id in invite.header("Call-Info")
    # the call record: ended by the caller; one two-channel recording, caller left
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        reason = db.execute("SELECT end_reason FROM calls WHERE call_id = ?",
                            (call_id,)).fetchone()[0]
        recs = db.execute("SELECT agent_id, channels, path FROM recordings WHERE call_id = ?",
                          (call_id,)).fetchall()
    assert reason == "caller_hangup"
    [(rec_agent, channels, path)] = recs
    assert (rec_agent, channels) == ("1001", 2)
    left, right = measure(Path(path), (CALLER_HZ, AGENT_HZ), skip_s=0.5)
    assert left.holds(CALLER_HZ) and right.holds(AGENT_HZ), (left, right)


def test_ring_no_answer_goes_to_the_next_agent_who_holds_resumes_and_hangs_up(
        tmp_path: Path) -> None:
    with contact_center(tmp_path) as stack, \
            agent(tmp_path, stack, "1001", answer="never") as silent, \
            agent(tmp_path, stack, "1002") as phone:
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=60000,
                            name="e2e_rna", ivr_hangs_up=True).start()
        silent.wait_incoming()  # linear: 1001 first; it rings ring_timeout_s (6 s)
        phone.wait_established(timeout_s=WAIT_S)
        call_id = the_call_id(stack)
        assert agent_state(stack, "1001") == ("not_ready", "no-answer")  # autopaused
        time.sleep(2.0)
        talking = caller.heard(since_s=time.monotonic() - 1.5)
        # hold from the agent's phone: the caller hears music, not the agent
        phone.hold()
        wait_until("the HOLD row", lambda: ("HOLD", "1002") in queue_log(stack, call_id))
        time.sleep(2.0)
        on_hold = caller.heard(since_s=time.monotonic() - 1.5)
        phone.resume()
        wait_until("the UNHOLD row", lambda: ("UNHOLD", "1002") in queue_log(stack, call_id))
        time.sleep(2.0)
        resumed = caller.heard(since_s=time.monotonic() - 1.5)
        # the agent hangs up: the caller goes on at after_agent (goodbye), then the IVR's BYE
        phone.hangup()
        result = caller.wait()
        assert result.ok, result.output
        rows = wait_until("the final row", lambda: [
            r for r in queue_log(stack, call_id) if r[0] == "COMPLETEAGENT"] and
            queue_log(stack, call_id))
    assert share(talking, AGENT_HZ) > 0.5
    assert share(on_hold, AGENT_HZ) < 0.1 and float(np.sqrt(np.mean(
        on_hold.astype(np.float64) ** 2))) > 300, "on hold the caller should hear music"
    assert share(resumed, AGENT_HZ) > 0.5, "after resume the caller should hear the agent"
    calls = [r for r in rows if r[0] not in AGENT_ROWS]
    assert calls == [("ENTERQUEUE", ""), ("RING", "1001"), ("RINGNOANSWER", "1001"),
                     ("RING", "1002"), ("CONNECT", "1002"), ("HOLD", "1002"),
                     ("UNHOLD", "1002"), ("COMPLETEAGENT", "1002")]
    assert ("PAUSE", "1001") in rows  # the autopause, named for this call
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        reason, by = db.execute("SELECT end_reason, hangup_by FROM calls WHERE call_id = ?",
                                (call_id,)).fetchone()
    assert by == "ivr", (reason, by)  # after the agent, the flow ended the call


def test_ring_all_rings_both_phones_and_one_agent_gets_the_call(tmp_path: Path) -> None:
    with contact_center(tmp_path, strategy="ring-all") as stack, \
            agent(tmp_path, stack, "1001", answer_after_s=1.0) as one, \
            agent(tmp_path, stack, "1002", answer_after_s=1.0) as two:
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=6000,
                            name="e2e_ringall").start()
        call_id = the_call_id(stack)
        one.wait_incoming()  # both phones ring; both answer after 1 s: one of them wins
        two.wait_incoming()
        result = caller.wait()
        assert result.ok, result.output
        rows = wait_until("the final row", lambda: [
            r for r in queue_log(stack, call_id) if r[0] == "COMPLETECALLER"] and
            queue_log(stack, call_id))
        states = {a: agent_state(stack, a) for a in ("1001", "1002")}
    connects = [a for e, a in rows if e == "CONNECT"]
    assert len(connects) == 1
    winner = connects[0]
    loser = "1002" if winner == "1001" else "1001"
    assert {("RING", "1001"), ("RING", "1002"), ("RINGCANCELED", loser)} <= set(rows)
    assert states[loser][0] == "ready"  # not paused: it was not a miss


# pyVoIP 1.6.8 never closes its calls' RTP sockets (they are left to the garbage collector)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_pyvoip_phone_registers_and_answers_a_queued_call(tmp_path: Path) -> None:
    """pyVoIP (a pure-Python SIP stack) as the agent's phone. It registers through the front
    and answers; the caller's hang-up ends the call in the ACD. What it cannot do: its 200 OK
    carries no Record-Route (tests/test_front_agents_pyvoip.py), so in-dialog requests from
    the worker do not reach it through the front; the agent leg still ends with the call."""
    pyvoip = pytest.importorskip("pyVoIP.VoIP")
    from tests.test_interop_baresip import _free_port

    answered: list[str] = []

    def on_call(call: Any) -> None:
        call.answer()
        answered.append(str(call.call_id))

    with contact_center(tmp_path) as stack:
        phone = pyvoip.VoIPPhone(
            "127.0.0.1", stack.port, "1001", PASSWORD, myIP="127.0.0.1", callCallback=on_call,
            sipPort=_free_port(18740), rtpPortLow=22740, rtpPortHigh=22779)
        phone.start()
        try:
            wait_until("pyVoIP registered", lambda: "1001" in stack.ivr(
                "agent", "list").stdout and phone.get_status().name == "REGISTERED")
            assert stack.ivr("agent", "state", "1001", "ready").returncode == 0
            caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=5000,
                                name="e2e_pyvoip").start()
            call_id = the_call_id(stack)
            wait_until("pyVoIP answered", lambda: answered)
            wait_until("the CONNECT row", lambda: ("CONNECT", "1001") in queue_log(
                stack, call_id))
            result = caller.wait()
            assert result.ok, result.output
            wait_until("the final row", lambda: ("COMPLETECALLER", "1001") in queue_log(
                stack, call_id))
            wait_until("the agent ready after wrap-up",
                       lambda: agent_state(stack, "1001") == ("ready", ""))
        finally:
            phone.stop()


def test_the_agents_screen_follows_a_call_over_the_api_and_takes_the_wrap_up_code(
        tmp_path: Path) -> None:
    import asyncio

    import httpx
    from websockets.asyncio.client import connect

    with contact_center(tmp_path) as stack:
        base = f"http://127.0.0.1:{stack.env['IVR_HTTP_PORT']}"
        tone = write_tone_wav(tmp_path / "agent.wav", AGENT_HZ, 60)
        with baresip_agent(tmp_path, stack.port, "1001", PASSWORD, "api-agent",
                           play=tone) as phone:
            phone.wait_registered()

            async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any], int]:
                async with httpx.AsyncClient(base_url=base, timeout=WAIT_S) as http:
                    r = await http.post("/api/v1/sessions",
                                        json={"agent_id": "1001", "password": PASSWORD})
                    assert r.status_code == 201, r.text
                    token = r.json()["token"]
                    auth = {"Authorization": f"Bearer {token}"}
                    ws_url = base.replace("http://", "ws://") + \
                        f"/api/v1/agents/1001/events?token={token}"
                    events: list[dict[str, Any]] = []
                    async with connect(ws_url) as ws:
                        assert json.loads(await ws.recv())["event"] == "hello"
                        put = await http.put("/api/v1/agents/1001/state", headers=auth,
                                             json={"state": "ready"})
                        assert put.status_code == 200, put.text
                        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ,
                                            talk_ms=4000, name="e2e_api").start()
                        current: dict[str, Any] = {}
                        while not events or events[-1].get("state") != "wrap_up":
                            events.append(json.loads(
                                await asyncio.wait_for(ws.recv(), WAIT_S)))
                            if events[-1]["event"] == "connected":
                                got = await http.get("/api/v1/agents/1001/call",
                                                     headers=auth)
                                current = got.json()
                        await asyncio.to_thread(caller.wait)
                        coded = await http.post("/api/v1/agents/1001/wrapup", headers=auth,
                                                json={"code": "support/fixed",
                                                      "note": "reset the router"})
                        while events[-1].get("state") != "ready":
                            events.append(json.loads(
                                await asyncio.wait_for(ws.recv(), WAIT_S)))
                        return events, current, coded.status_code

            events, current, coded = asyncio.run(scenario())
        call_id = the_call_id(stack)
        rows = wait_until("the WRAPUP row", lambda: ("WRAPUP", "1001") in queue_log(
            stack, call_id) and queue_log(stack, call_id))
    kinds = [e["event"] if e["event"] != "state" else f"state:{e['state']}" for e in events]
    # the ACD's state change comes first, then what it means for the screen
    assert kinds == ["state:ready", "state:reserved", "offered", "state:on_call", "connected",
                     "state:wrap_up", "ended", "state:ready"], kinds  # the code ends ACW
    offered = next(e for e in events if e["event"] == "offered")
    assert offered["call"]["call_id"] == call_id and offered["call"]["queue"] == "support"
    assert current["call_id"] == call_id and current["state"] == "connected"
    assert current["caller"]  # the caller's number, from the IVR
    ended = next(e for e in events if e["event"] == "ended")
    assert (ended["call_id"], ended["by"]) == (call_id, "caller")
    assert coded == 200
    assert ("WRAPUP", "1001") in rows


def test_a_killed_controller_a_bridged_call_goes_on_and_a_restart_reconciles(
        tmp_path: Path) -> None:
    import os
    import signal

    from tests.conftest import wait_no_stack_processes

    with contextlib.ExitStack() as cleanup:
        stack = start_stack(tmp_path, workers=1, flow=FLOW, env={
            "IVR_PATHS_ACD": str(acd_file(tmp_path)), "IVR_WORKER_DRAIN_TIMEOUT_S": "6"})
        cleanup.callback(stack.stop)
        for agent_id in ("1001", "1002"):
            assert stack.ivr("agent", "add", agent_id, "--name", "A", "--password",
                             PASSWORD).returncode == 0
        assert stack.ivr("agent", "state", "1002", "not-ready", "--reason",
                         "lunch").returncode == 0
        phone = cleanup.enter_context(agent(tmp_path, stack, "1001"))
        talking = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=30000,
                             name="e2e_bridged", ivr_hangs_up=True).start()
        phone.wait_established()
        bridged = the_call_id(stack)
        waiting = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=30000,
                             name="e2e_waiting", ivr_hangs_up=True).start()
        wait_until("the second caller queued", lambda: the_call_id(stack) != bridged)
        queued = the_call_id(stack)
        time.sleep(0.5)  # the writer thread's batch
        os.kill(stack.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(2.0)
        after_kill = talking.heard(since_s=killed_at + 0.5)
        # the waiting caller has no ACD any more: on_unavailable (the IVR hangs up);
        # the bridged call goes on until the worker's drain ends it
        assert waiting.wait().ok
        assert talking.wait().ok
        stack.proc.wait(30)
        wait_no_stack_processes(stack.var_dir, timeout_s=60)
        again = start_stack(tmp_path, same_as=stack)
        cleanup.callback(again.stop)
        data = json.loads(again.ivr("queue", "show", "support", "--json").stdout)
        states = {a["id"]: (a["state"], a["reason"]) for a in data["queues"][0]["agents"]}
        rows = {c: queue_log(again, c) for c in (bridged, queued)}
    assert share(after_kill, AGENT_HZ) > 0.5, "the bridged call stopped with the controller"
    assert states == {"1001": ("ready", ""), "1002": ("not_ready", "lunch")}
    finals = {c: [e for e, _ in r if e in ("COMPLETECALLER", "COMPLETEAGENT", "EXITFAILURE",
                                          "ABANDON")] for c, r in rows.items()}
    assert finals == {bridged: ["COMPLETECALLER"], queued: ["EXITFAILURE"]}, rows


def call_events(stack: StackProcess, call_id: str) -> list[tuple[str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        rows = db.execute("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id",
                          (call_id,)).fetchall()
    return [(k, json.loads(d) if d else {}) for k, d in rows]


def test_a_waiting_caller_hears_position_and_wait_and_leaves_at_max_wait(
        tmp_path: Path) -> None:
    acd = tmp_path / "acd.yaml"
    acd.write_text("""\
queues:
  support: {announce_every_s: 2, max_wait_s: 7, when_no_agents: wait}
agents:
  "1001": {name: Ann, queues: {support: 5}}
""")
    stack = start_stack(tmp_path, workers=1, flow=FLOW, env={"IVR_PATHS_ACD": str(acd)})
    try:
        # signed in but paused: the queue has an agent, nobody is free
        assert stack.ivr("agent", "state", "1001", "not-ready", "--reason",
                         "break").returncode == 0
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=30000,
                            name="e2e_wait", ivr_hangs_up=True).start()
        call_id = the_call_id(stack)
        assert caller.wait().ok  # the IVR hangs up: on_unavailable after max_wait_s
        rows = wait_until("the final row", lambda: ("EXITWITHTIMEOUT", "") in queue_log(
            stack, call_id) and queue_log(stack, call_id))
        events = wait_until("the call's end", lambda: any(
            k == "queue.exit" for k, _ in call_events(stack, call_id)) and call_events(
            stack, call_id))
    finally:
        assert stack.stop() == 0
    announced = [d for k, d in events if k == "queue.announced"]
    assert announced and announced[0]["position"] == 1  # said once: it never changed
    assert len(announced) == 1
    plays = [p for k, d in events if k == "play" for p in d["prompts"]]
    # "you are caller 1 in the queue", "the estimated wait is ... minutes"
    assert {"en-US:you_are_caller", "en-US:in_queue", "en-US:est_wait"} <= set(plays), plays
    assert [e for e, _ in rows if e not in AGENT_ROWS] == ["ENTERQUEUE", "EXITWITHTIMEOUT"]


def test_nobody_signed_in_sends_the_caller_on_at_once_and_is_counted(tmp_path: Path) -> None:
    acd = tmp_path / "acd.yaml"
    acd.write_text("""\
queues:
  support: {when_no_agents: overflow}
agents:
  "1001": {name: Ann, queues: {support: 5}}
""")
    stack = start_stack(tmp_path, workers=1, flow=FLOW, env={"IVR_PATHS_ACD": str(acd)})
    try:
        caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ, talk_ms=30000,
                            name="e2e_empty", ivr_hangs_up=True).start()
        assert caller.wait().ok  # on_unavailable (bye): the IVR hangs up
        shown = wait_until("JOINEMPTY counted", lambda: (json.loads(stack.ivr(
            "queue", "show", "support", "--json").stdout)["queues"][0]["figures"]
            if "JOINEMPTY" in [e for e, _ in queue_log(stack)] else None))
    finally:
        assert stack.stop() == 0
    assert shown["blocked"] == 1 and shown["calls_waiting"] == 0
