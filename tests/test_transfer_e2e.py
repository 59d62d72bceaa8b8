"""Transfers end to end, on ONE stack for the module: ``ivr run`` (Kamailio, controller, a
worker), two agents' baresip phones registered through Kamailio, sipp callers into a queue.

The caller sends 440 Hz; agent 1001's phone sends 1000 Hz, agent 1002's 1500 Hz: after a
transfer the caller must hear the second agent's tone (not the first's) and the second
agent's phone the caller's. The queue log and the recordings table are checked too."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests import sipp
from tests.agent_phone import AgentPhone, baresip_agent
from tests.conftest import StackProcess, start_stack
from tests.test_acd_e2e import AGENT_ROWS, FLOW, PASSWORD, queue_log, share, wait_until
from tests.test_interop_baresip import BARESIP, MODULE_DIR
from tests.tone_caller import ToneCaller
from tests.tones import measure, write_tone_wav

CALLER_HZ = 440.0
AGENT_HZ = {"1001": 1000.0, "1002": 1500.0}
SUP_HZ = 2000.0  # the supervisor's phone, 1003
PHONES_HZ = {**AGENT_HZ, "1003": SUP_HZ}

pytestmark = [
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(BARESIP is None or MODULE_DIR is None, reason="baresip not installed"),
]


class Center:
    def __init__(self, stack: StackProcess, phones: dict[str, AgentPhone], tmp: Path) -> None:
        self.stack, self.phones, self.tmp = stack, phones, tmp
        self.api = f"http://127.0.0.1:{stack.env['IVR_HTTP_PORT']}"

    def ready(self, *agents: str) -> None:
        for agent_id in agents:
            wait_until(f"agent {agent_id} out of wrap-up", lambda a=agent_id: self.state(a)
                       in ("ready", "not_ready", "logged_out"))
            assert self.stack.ivr("agent", "state", agent_id, "ready").returncode == 0

    def state(self, agent_id: str) -> str:
        data = json.loads(self.stack.ivr("queue", "show", "support", "--json").stdout)
        [a] = [x for x in data["queues"][0]["agents"] if x["id"] == agent_id]
        return str(a["state"])

    def token(self, agent_id: str) -> dict[str, str]:
        r = httpx.post(f"{self.api}/api/v1/sessions",
                       json={"agent_id": agent_id, "password": PASSWORD}, timeout=30)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def post(self, agent_id: str, path: str, body: dict[str, Any] | None = None,
             ) -> httpx.Response:
        return httpx.post(f"{self.api}/api/v1/agents/{agent_id}/call/{path}", json=body,
                          headers=self.token(agent_id), timeout=30)

    def calls_so_far(self) -> set[str]:
        with contextlib.closing(sqlite3.connect(self.stack.db)) as db:
            return {r[0] for r in db.execute("SELECT call_id FROM queue_log WHERE event = "
                                             "'ENTERQUEUE'")}

    def latest_call(self, not_in: set[str]) -> str:
        def joined() -> str | None:
            with contextlib.closing(sqlite3.connect(self.stack.db)) as db:
                rows = db.execute("SELECT call_id FROM queue_log WHERE event = 'ENTERQUEUE' "
                                  "ORDER BY id DESC").fetchall()
            fresh = [r[0] for r in rows if r[0] not in not_in]
            return fresh[0] if fresh else None

        return str(wait_until("the caller entered the queue", joined))

    def recordings(self, call_id: str) -> list[tuple[str, int, str]]:
        with contextlib.closing(sqlite3.connect(self.stack.db)) as db:
            return db.execute("SELECT agent_id, channels, path FROM recordings WHERE "
                              "call_id = ? ORDER BY id", (call_id,)).fetchall()


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    tmp = tmp_path_factory.mktemp("transfer_e2e")
    acd = tmp / "acd.yaml"
    acd.write_text("""\
queues:
  support: {strategy: linear, ring_timeout_s: 8, wrapup_s: 1, autopause_after: 0,
            announce_every_s: 0, when_no_agents: wait, record: true}
  back: {when_no_agents: wait}
agents:
  "1001": {name: Ann Agent, queues: {support: 5}}
  "1002": {name: Ben Agent, queues: {support: 5}}
  "1003": {name: Sue Supervisor, queues: {back: 1}}
supervision: {supervisors: ["1003"]}
""")
    stack = start_stack(tmp, workers=1, flow=FLOW, env={"IVR_PATHS_ACD": str(acd)})
    try:
        for agent_id in PHONES_HZ:
            assert stack.ivr("agent", "add", agent_id, "--name", agent_id, "--password",
                             PASSWORD).returncode == 0
        with contextlib.ExitStack() as phones:
            started = {}
            for i, (agent_id, hz) in enumerate(PHONES_HZ.items()):
                tone = write_tone_wav(tmp / f"agent-{agent_id}.wav", hz, 120)
                phone = phones.enter_context(baresip_agent(
                    tmp, stack.port, agent_id, PASSWORD, f"agent{agent_id}", play=tone,
                    rtp_ports=(22800 + 20 * i, 22819 + 20 * i), quit_after_s=600))
                phone.wait_registered()
                started[agent_id] = phone
            yield Center(stack, started, tmp)
    finally:
        assert stack.stop() == 0


def _refer(phone: AgentPhone, uri: str) -> None:
    """baresip's own transfer command: it sends REFER on its leg. Typed again once if its
    trace shows no REFER (its console is the test's input, not the product's)."""
    before = len(phone.sent("REFER "))
    for _ in range(2):
        phone.keys(f"/transfer {uri}\n")
        if len(phone.wait_sent("REFER ", before + 1, timeout_s=10)) > before:
            return
    raise AssertionError("baresip sent no REFER for /transfer; its output:\n"
                         + "".join(phone.lines[-40:]))


def _wait_second_agent(center: Center, call_id: str, since: int) -> None:
    """The second agent's phone answers the transferred call; on failure the message says
    what the first phone and the stack saw of the transfer."""
    try:
        center.phones["1002"].wait_established(since=since, timeout_s=30)
    except AssertionError as exc:
        stack = [line for line in center.stack.lines
                 if call_id in line or "refer" in line.lower() or "transfer" in line.lower()]
        first = "".join(center.phones["1001"].lines[-40:])
        raise AssertionError(f"{exc}\n--- the stack on the call:\n{''.join(stack[-40:])}"
                             f"\n--- the first agent's phone:\n{first}") from None


def _heard(caller: ToneCaller, seconds: float = 1.5) -> Any:
    time.sleep(seconds + 0.5)
    return caller.heard(since_s=time.monotonic() - seconds)


def test_a_blind_transfer_from_baresips_own_transfer_command(center: Center) -> None:
    center.ready("1001", "1002")
    first, second = center.phones["1001"], center.phones["1002"]
    seen = (first.mark(), second.mark())  # output line indices, for the waits
    caller = ToneCaller(f"127.0.0.1:{center.stack.port}", center.tmp, CALLER_HZ,
                        talk_ms=60000, name="xfer_blind", ivr_hangs_up=True).start()
    call_id = center.latest_call(set())  # the module's first call
    first.wait_established(since=seen[0])
    before = _heard(caller)
    _refer(first, "sip:1002@127.0.0.1")
    _wait_second_agent(center, call_id, seen[1])
    after = _heard(caller, 2.0)
    second.hangup()  # the flow says goodbye and hangs up: the test need not wait longer
    assert caller.wait().ok
    rows = wait_until("the final row", lambda: any(
        e == "COMPLETEAGENT" for e, _ in queue_log(center.stack, call_id))
        and queue_log(center.stack, call_id))
    recs = wait_until("two recordings", lambda: len(center.recordings(call_id)) >= 2
                      and center.recordings(call_id))
    heard_by_second = second.recordings()[-1]
    assert share(before, AGENT_HZ["1001"]) > 0.5, "before: the caller hears the first agent"
    assert share(after, AGENT_HZ["1002"]) > 0.5, "after: the caller hears the second agent"
    assert share(after, AGENT_HZ["1001"]) < 0.1
    [got] = measure(heard_by_second, (CALLER_HZ,), skip_s=1.0)
    assert got.holds(CALLER_HZ), f"the second agent does not hear the caller: {got}"
    calls = [(e, a) for e, a in rows if e not in AGENT_ROWS]
    assert calls == [("ENTERQUEUE", ""), ("RING", "1001"), ("CONNECT", "1001"),
                     ("BLINDTRANSFER", "1001"), ("RING", "1002"), ("CONNECT", "1002"),
                     ("COMPLETEAGENT", "1002")], calls
    assert [(a, ch) for a, ch, _ in recs] == [("1001", 2), ("1002", 2)]
    for (agent_id, _, path) in recs:  # caller left, that agent right
        left, right = measure(Path(path), (CALLER_HZ, AGENT_HZ[agent_id]), skip_s=0.5)
        assert left.holds(CALLER_HZ) and right.holds(AGENT_HZ[agent_id]), (agent_id, left,
                                                                           right)


def test_a_consult_transfer_through_the_api(center: Center) -> None:
    center.ready("1001", "1002")
    first, second = center.phones["1001"], center.phones["1002"]
    seen = (first.mark(), second.mark())  # output line indices, for the waits
    known = center.calls_so_far()
    caller = ToneCaller(f"127.0.0.1:{center.stack.port}", center.tmp, CALLER_HZ,
                        talk_ms=60000, name="xfer_consult", ivr_hangs_up=True).start()
    call_id = center.latest_call(known)
    first.wait_established(since=seen[0])
    r = center.post("1001", "consult", {"to": "agent:1002"})
    assert r.status_code == 202, r.text
    second.wait_established(since=seen[1], timeout_s=30)
    on_hold = _heard(caller)  # the agents talk: the caller hears music, neither agent
    r = center.post("1001", "consult/complete")
    assert r.status_code == 202, r.text
    after = _heard(caller, 2.0)
    second.hangup()
    assert caller.wait().ok
    rows = wait_until("the final row", lambda: any(
        e == "COMPLETEAGENT" for e, _ in queue_log(center.stack, call_id))
        and queue_log(center.stack, call_id))
    assert share(on_hold, AGENT_HZ["1001"]) < 0.1 and share(on_hold, AGENT_HZ["1002"]) < 0.1
    level = float(np.sqrt(np.mean(on_hold.astype(np.float64) ** 2)))
    assert level > 300, f"held for the consult the caller should hear music (rms {level:.0f})"
    assert share(after, AGENT_HZ["1002"]) > 0.5, "after: the caller hears the second agent"
    [got] = measure(second.recordings()[-1], (CALLER_HZ,), skip_s=1.0)
    assert got.holds(CALLER_HZ), f"the second agent does not hear the caller: {got}"
    calls = [(e, a) for e, a in rows if e not in AGENT_ROWS]
    assert calls == [("ENTERQUEUE", ""), ("RING", "1001"), ("CONNECT", "1001"),
                     ("CONSULT", "1001"), ("RING", "1002"), ("ATTENDEDTRANSFER", "1001"),
                     ("COMPLETEAGENT", "1002")], calls
    assert [a for a, _, _ in center.recordings(call_id)] == ["1001", "1002"]


def test_a_supervisor_listens_then_whispers_on_the_same_leg(center: Center) -> None:
    center.ready("1001")
    agent, sup = center.phones["1001"], center.phones["1003"]
    seen = (agent.mark(), sup.mark())  # output line indices, for the waits
    legs = sup.count("Call established")
    known = center.calls_so_far()
    caller = ToneCaller(f"127.0.0.1:{center.stack.port}", center.tmp, CALLER_HZ,
                        talk_ms=60000, name="supervised", ivr_hangs_up=True).start()
    call_id = center.latest_call(known)
    agent.wait_established(since=seen[0])
    listen = center.stack.ivr("supervise", call_id, "--listen", "--phone", "1003")
    assert listen.returncode == 0, listen.stderr
    sup.wait_established(since=seen[1], timeout_s=30)
    during_listen = _heard(caller, 2.0)
    whisper = center.stack.ivr("supervise", call_id, "--whisper")  # no new leg
    assert whisper.returncode == 0, whisper.stderr
    during_whisper = _heard(caller, 2.5)
    agent.hangup()  # the call ends (goodbye, the IVR's BYE) and the supervisor's leg too
    assert caller.wait().ok
    sup.wait_ended(since=seen[1])
    assert sup.count("Call established") == legs + 1  # one leg for both modes
    [sup_heard] = measure(sup.recordings()[-1], (CALLER_HZ, AGENT_HZ["1001"]), skip_s=1.0)
    [agent_heard] = measure(agent.recordings()[-1], (SUP_HZ,), skip_s=1.0)
    for window in (during_listen, during_whisper):  # the caller never hears the supervisor
        assert share(window, AGENT_HZ["1001"]) > 0.5 and share(window, SUP_HZ) < 0.05
    # the supervisor hears both sides; the agent heard the supervisor (the whisper)
    assert sup_heard.share[CALLER_HZ] > 0.15 and sup_heard.share[AGENT_HZ["1001"]] > 0.15, \
        sup_heard
    assert agent_heard.share[SUP_HZ] > 0.05, agent_heard
