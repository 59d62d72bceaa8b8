"""A queued callback end to end: ``ivr run`` (Kamailio, controller, a worker), a sipp caller
who presses 3 for a callback, confirms the number read back (1) and is hung up; the agent's
baresip phone (registered through Kamailio) is rung and answers, the worker dials the sipp
"customer" (a UAS at the queue's callback.dial_uri), which answers; tones pass both ways;
the queue log, the callback's outcome in the store and the two-channel recording agree.
Then storm mode on the same stack: ``ivr emergency on|show|off`` through the ops socket; a
caller entering the queue hears the message first, and no more once it is off; both
switches are queue-log rows. One stack for the module."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import StackProcess, start_stack
from tests.rtp_peer import RtpPeer, received_pcm, stream_pcm
from tests.test_acd_e2e import (
    AGENT_HZ,
    CALLER_HZ,
    PASSWORD,
    agent,
    call_events,
    queue_log,
    wait_until,
)
from tests.test_interop_baresip import BARESIP, MODULE_DIR
from tests.tone_caller import ToneCaller
from tests.tones import measure, tone_pcm, tone_share

pytestmark = [
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(BARESIP is None or MODULE_DIR is None, reason="baresip not installed"),
]
CUSTOMER_HZ = CALLER_HZ  # the customer's phone sends 440 Hz, the agent's 1000 Hz
FLOW = """\
name: callback
version: 1
language: en-US
start: q
nodes:
  q:
    type: queue
    queue: support
    prompts: [support]
    on_unavailable: bye
    callback: {key: "3", offer_prompts: [], readback_prompts: [], confirm_prompts: [beep],
               taken_prompts: [beep], goodbye_prompts: []}
  bye: {type: hangup}
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[StackProcess, Path, RtpPeer, object, str]]:
    tmp = tmp_path_factory.mktemp("callback")
    customer = RtpPeer(ssrc=0xC0570001)
    with sipp.uas("customer_answers.xml.in", tmp, customer.port, timeout_s=120) as (proc, uri):
        port = uri.rsplit(":", 1)[1]
        (tmp / "flow.yaml").write_text(FLOW)
        (tmp / "acd.yaml").write_text(f"""\
queues:
  support:
    ring_timeout_s: 10
    wrapup_s: 1
    announce_every_s: 0
    record: true
    callback: {{retries: 1, retry_s: 30, no_answer_s: 10, voicemail_answer_s: 0,
                dial_uri: "sip:{{number}}@127.0.0.1:{port}"}}
agents:
  "1001": {{name: Ann Agent, queues: {{support: 5}}}}
""")
        stack = start_stack(tmp, workers=1, flow=tmp / "flow.yaml",
                            env={"IVR_PATHS_ACD": str(tmp / "acd.yaml")})
        try:
            added = stack.ivr("agent", "add", "1001", "--name", "Ann", "--password", PASSWORD)
            assert added.returncode == 0, added.stderr
            yield stack, tmp, customer, proc, uri
        finally:
            assert stack.stop() == 0
            customer.close()


def _callback_id(stack: StackProcess) -> str | None:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        row = db.execute("SELECT code FROM queue_log WHERE event = 'EXITCALLBACK' "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def test_a_caller_asks_for_a_callback_the_agent_is_rung_and_the_customer_dialled(
        rig: tuple[StackProcess, Path, RtpPeer, object, str]) -> None:
    stack, tmp, customer, uas_proc, _ = rig
    # 1. the caller (nobody signed in: they wait) asks for the callback and is hung up
    caller = sipp.Caller("cb_caller", telephone_event=True)
    # 3 for the callback, then 1 to confirm the number read back (never the same pcap twice
    # in a row: its fixed RTP timestamps would make it one event, tests/sipp_scenarios.py)
    caller.pause(5500).rfc2833("3").pause(1500).rfc2833("1")
    caller.ivr_hangs_up(30000)
    result: list[sipp.SippResult] = []
    t = threading.Thread(target=lambda: result.append(
        sipp.run(caller, f"127.0.0.1:{stack.port}", tmp, timeout_s=45)))
    t.start()
    callback_id = str(wait_until("the callback taken", lambda: _callback_id(stack), 30))
    t.join(60)
    assert result and result[0].ok, result[0].output if result else "sipp did not end"

    # 2. the agent signs in: rung for the callback, answers; the customer is dialled
    with agent(tmp, stack, "1001") as phone:
        phone.wait_established()
        invite = phone.invites()[0]
        assert invite.header("X-Callback") == "15550100"
        to = customer.first_source(timeout_s=20)  # the worker's RTP reaches the customer
        stream_pcm(customer, to, tone_pcm(CUSTOMER_HZ, 1.0, -10.0))
        time.sleep(3.0)
        since = time.monotonic() - 1.5
        heard_by_customer = received_pcm(customer, since)
        phone.hangup()  # the agent ends it: the worker sends the customer a BYE
        phone.wait_ended()
        assert uas_proc.wait(timeout=20) == 0  # type: ignore[attr-defined]
        rows = wait_until("the final row", lambda: [
            r for r in queue_log(stack, callback_id) if r[0] == "CALLBACKCOMPLETE"] and
            queue_log(stack, callback_id))
        [agent_rec] = phone.recordings()

    assert tone_share(heard_by_customer, AGENT_HZ) > 0.5, "the customer does not hear the agent"
    [agent_heard] = measure(agent_rec, (CUSTOMER_HZ, AGENT_HZ), skip_s=1.0)
    assert agent_heard.holds(CUSTOMER_HZ), f"the agent does not hear the customer: {agent_heard}"
    events = [e for e, _ in rows if e in {"CALLBACKREQUEST", "RING", "CALLBACKDIAL",
                                          "CALLBACKCONNECT", "CALLBACKCOMPLETE"}]
    assert events == ["CALLBACKREQUEST", "RING", "CALLBACKDIAL", "CALLBACKCONNECT",
                      "CALLBACKCOMPLETE"]
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        state, outcome, attempts = db.execute(
            "SELECT state, outcome, attempts FROM callbacks WHERE callback_id = ?",
            (callback_id,)).fetchone()
    assert (state, outcome, attempts) == ("closed", "completed_agent", 0)
    recording = stack.var_dir / "recordings" / f"{callback_id}-1001.wav"
    # the recording follows the call: linked to the call the callback came from
    linked = wait_until("the recording linked", lambda: _recordings(stack, callback_id))
    assert linked == [("1001", "support", str(recording), 2)], linked
    left, right = measure(recording, (CUSTOMER_HZ, AGENT_HZ), skip_s=0.5)
    assert left.holds(CUSTOMER_HZ) and right.holds(AGENT_HZ), (left, right)


def _recordings(stack: StackProcess, callback_id: str) -> list[tuple[str, str, str, int]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        return db.execute("SELECT agent_id, queue, path, channels FROM recordings WHERE "
                          "call_id = ? ORDER BY id", (callback_id.removeprefix("cb-"),)
                          ).fetchall()


def _last_call(stack: StackProcess) -> str | None:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        row = db.execute("SELECT call_id FROM calls ORDER BY arrived_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def _plays_of_a_call(stack: StackProcess, tmp: Path, name: str, talk_ms: int) -> list[str]:
    """A caller who listens ``talk_ms`` and hangs up: the prompts the worker played them."""
    before = _last_call(stack)
    caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp, CALLER_HZ, talk_ms=talk_ms,
                        name=name).start()
    call_id = wait_until("the call", lambda: (c := _last_call(stack)) != before and c)
    assert caller.wait().ok
    events = wait_until("the call's end", lambda: any(
        k == "ended" for k, _ in call_events(stack, call_id)) and call_events(stack, call_id))
    return [p for k, d in events if k == "play" for p in d["prompts"]]


def test_storm_mode_on_a_caller_hears_the_message_before_the_queue_then_off(
        rig: tuple[StackProcess, Path, RtpPeer, object, str]) -> None:
    stack, tmp, *_ = rig
    assert stack.ivr("agent", "state", "1001", "logged-out").returncode == 0  # they wait
    bad = stack.ivr("emergency", "on", "support", "--prompt", "no_such_prompt")
    assert bad.returncode == 1 and "'no_such_prompt' is not in prompt set" in bad.stderr
    on = stack.ivr("emergency", "on", "support", "--prompt", "outage_area", "--expires", "2h")
    assert on.returncode == 0, on.stderr
    assert "support: prompt outage_area until" in on.stdout
    stack.wait_for('"worker.emergencies"', timeout_s=10)  # the worker was told
    shown = stack.ivr("emergency", "show")
    assert shown.returncode == 0 and "support: prompt outage_area" in shown.stdout
    plays = _plays_of_a_call(stack, tmp, "storm_on", 8000)  # the message is 6.4 s
    assert plays[:2] == ["en-US:outage_area", "en-US:support"], plays  # before the greeting

    off = stack.ivr("emergency", "off", "support")
    assert off.returncode == 0 and "no emergency message is on" in off.stdout
    assert _plays_of_a_call(stack, tmp, "storm_off", 2500)[:1] == ["en-US:support"]
    # the queue takes callbacks: the message may be followed by its callback offer
    on = stack.ivr("emergency", "on", "support", "--prompt", "outage_area", "--offer-callback")
    assert on.returncode == 0 and "callback offered" in on.stdout, (on.stdout, on.stderr)
    assert stack.ivr("emergency", "off", "support").returncode == 0
    switches = [e for e, _ in queue_log(stack) if e.startswith("EMERGENCY")]
    assert switches == ["EMERGENCYON", "EMERGENCYOFF", "EMERGENCYON", "EMERGENCYOFF"]
