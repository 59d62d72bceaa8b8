"""A real worker (PJSIP, as forked in a pool) with the test playing its controller on the
worker's controller socket (ivr/protocol.py + ivr/messages.py), a sipp caller whose audio is
an RtpPeer of the test (it sends 440 Hz and keeps what it hears), and a baresip agent phone
called at its own address (no Kamailio) that answers by itself, sends 1000 Hz and records
what it hears: Join, music on hold, the offer rung and answered, the bridge carrying audio
both ways, the two-channel recording, the agent's hang-up sending the caller on at
``after_agent``; and the capacity rule (a flow with a queue: two callers per worker)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ivr import messages as m
from ivr.agent_credentials import AgentSip, make_hashes
from ivr.kamailio import Destination, KamailioConfig, KamailioProcess
from ivr.store import CallStore
from tests import sipp
from tests.conftest import ROOT, WorkerProcess, _read_lines, free_sip_port
from tests.phone_harness import band_power, tone, write_wav
from tests.rtp_peer import RtpPeer, received_pcm, stream_pcm
from tests.test_front_agents import DOMAIN, PASSWORD, REALM, baresip_agent
from tests.test_interop_baresip import BARESIP, MODULE_DIR, SAFETY_QUIT_S, Baresip, _free_port
from tests.test_kamailio import port_block, wait_until

FLOW = Path(__file__).parent / "flows" / "acd.yaml"
CALLER_HZ = 440.0
AGENT_HZ = 1000.0

pytestmark = [
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(BARESIP is None or MODULE_DIR is None, reason="baresip not installed"),
]


class FakeController:
    """The controller's end of the socket: every line the worker sends, decoded, in order;
    ``send`` writes a typed message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.conn: socket.socket | None = None
        self.received: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        self.conn = conn
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                self.received.append(msg)
                self._q.put(msg)

    def wait_for(self, wire_type: str, timeout_s: float = 15.0, **match: Any) -> dict[str, Any]:
        for msg in self.received:
            if msg["type"] == wire_type and all(msg.get(k) == v for k, v in match.items()):
                return msg
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                msg = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if msg["type"] == wire_type and all(msg.get(k) == v for k, v in match.items()):
                return msg
        seen = [x if x["type"].startswith("acd.") else x["type"] if x["type"] != "store"
                else f"store {x['op']} {x['args'].get('kind', '')}" for x in self.received]
        raise AssertionError(f"the worker never sent {wire_type} {match or ''}; it sent {seen}")

    def send(self, msg: m.Message) -> None:
        assert self.conn is not None, "the worker is not connected"
        self.conn.sendall(m.to_wire(msg))

    def events(self, call_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The call_event records of a call, (kind, data), in order."""
        return [(x["args"]["kind"], x["args"]["data"]) for x in self.received
                if x["type"] == "store" and x["op"] == "call_event" and x["call_id"] == call_id]

    def ended(self, call_id: str) -> dict[str, Any] | None:
        for x in self.received:
            if x["type"] == "store" and x["op"] == "call_ended" and x["call_id"] == call_id:
                return dict(x["args"])
        return None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
        self.server.close()


@contextlib.contextmanager
def acd_worker(tmp_path: Path, flow: Path = FLOW, env: dict[str, str] | None = None,
               port: int | None = None) -> Iterator[tuple[WorkerProcess, FakeController]]:
    port = port or free_sip_port()
    var_dir = tmp_path / "var"
    sock = tmp_path / "controller.sock"
    controller = FakeController(sock)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IVR_")},
        "IVR_SIP_PORT": str(port),
        "IVR_SIP_BIND_ADDRESS": "127.0.0.1",
        "IVR_RTP_PORT_START": str(10000 + 40 * (((port - 5200) // 10) % 100)),
        "IVR_RTP_PORT_RANGE": "40",
        "IVR_PATHS_VAR_DIR": str(var_dir),
        "IVR_PATHS_PROMPTS_DIR": str(ROOT / "prompts"),
        "IVR_PATHS_FLOW": str(flow),
        "IVR_LOG_FORMAT": "json",
        "IVR_WORKER_NAME": "w000",
        "IVR_WORKER_DRAIN_TIMEOUT_S": "5",
        **(env or {}),
    }
    proc = subprocess.Popen([sys.executable, "-m", "tests.acd_worker", str(sock)], cwd=ROOT,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    wp = WorkerProcess(proc, port, var_dir)
    _read_lines(wp)
    try:
        wp.wait_for('"worker.ready"', timeout_s=30)
        controller.wait_for("hello")
        yield wp, controller
    except BaseException:
        print("the worker's log:\n" + "".join(wp.lines[-80:]))
        raise
    finally:
        wp.stop()
        controller.close()


@contextlib.contextmanager
def baresip_phone(tmp_path: Path, agent_id: str, answermode: str = "auto"
                  ) -> Iterator[tuple[Baresip, str]]:
    """baresip at its own address (no registration), answering by itself (``answermode``
    auto) and sending AGENT_HZ; yields the phone and its URI."""
    assert BARESIP is not None and MODULE_DIR is not None
    conf, audio = tmp_path / "agent-conf", tmp_path / "agent-audio"
    conf.mkdir()
    audio.mkdir()
    source = write_wav(tmp_path / "agent-tone.wav", tone(AGENT_HZ, 30.0))
    sip_port = _free_port(18700)
    (conf / "config").write_text(f"""\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
call_max_calls		1
audio_path		/usr/share/baresip
audio_source		aufile,{source}
audio_player		sndfile,nowhere
rtp_ports		22700-22739
net_interface		127.0.0.1
dns_server		127.0.0.1:53
module_path		{MODULE_DIR}
module			stdio.so
module			g711.so
module			aufile.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
snd_path		{audio}
statmode_default	off
""")
    (conf / "accounts").write_text(
        f'"Agent {agent_id}" <sip:{agent_id}@127.0.0.1>;regint=0;answermode={answermode};'
        "audio_codecs=pcmu\n")
    proc = subprocess.Popen(
        [BARESIP, "-4", "-f", str(conf), "-t", str(SAFETY_QUIT_S)], cwd=tmp_path,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace")
    phone = Baresip(proc, audio)
    phone.start_reading()
    try:
        phone.wait_for("baresip is ready", timeout_s=15)
        yield phone, f"sip:{agent_id}@127.0.0.1:{sip_port}"
    finally:
        phone.stop()


def dominates(pcm: npt.NDArray[np.int16], present_hz: float, absent_hz: float) -> bool:
    return band_power(pcm, 8000, present_hz) > 30 * band_power(pcm, 8000, absent_hz)


def loud(pcm: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


def heard(peer: RtpPeer, seconds: float) -> npt.NDArray[np.int16]:
    since = time.monotonic()
    time.sleep(seconds)
    return received_pcm(peer, since)


def start_caller(tmp_path: Path, target: str, peer: RtpPeer, name: str = "acd_caller"
                 ) -> tuple[threading.Thread, list[sipp.SippResult]]:
    """A sipp caller whose audio is ``peer``; it waits (up to 60 s) for the IVR's BYE."""
    scenario = sipp.Caller(name, media_port=peer.port).ivr_hangs_up(60000)
    results: list[sipp.SippResult] = []
    thread = threading.Thread(target=lambda: results.append(
        sipp.run(scenario, target, tmp_path, timeout_s=90)), daemon=True)
    thread.start()
    return thread, results


def test_a_queued_caller_hears_music_talks_to_a_baresip_agent_and_goes_on_after_it(
        tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0xACD00001)
    try:
        with acd_worker(tmp_path) as (wp, ctl), baresip_phone(tmp_path, "1001") as (phone,
                                                                                    uri):
            wp.wait_for('"worker.capacity"')
            caller, results = start_caller(tmp_path, wp.target, peer)
            join = ctl.wait_for("acd.join")
            call_id = join["call_id"]
            assert (join["queue"], join["caller"]) == ("support", "+15550100")
            assert join["data"]["language"] == "en-US"

            # Queued: music on hold, from the worker's looping player.
            ctl.send(m.Queued(call_id, "support", 1, 30))
            stream_pcm(peer, peer.first_source(), tone(CALLER_HZ, 1.0))
            time.sleep(0.3)
            music = heard(peer, 1.5)
            assert loud(music) > 300, f"no music on hold ({loud(music):.0f} RMS)"

            # Offer: baresip's phone rings and answers; not bridged yet.
            ctl.send(m.Offer(call_id, "o1", "1001", uri, "support", 12.0, 20.0, True))
            ctl.wait_for("acd.answered", offer_id="o1")
            invite_seen = phone.wait_for("Call established", timeout_s=10)
            offered = dict(ctl.events(call_id))["agent.offered"]
            assert offered == {"offer_id": "o1", "agent_id": "1001", "uri": uri,
                               "queue": "support"}

            # Connect: the bridge carries each side to the other.
            ctl.send(m.Connect(call_id, "o1", "1001"))
            ctl.wait_for("store", op="call_event", call_id=call_id,
                         args={"kind": "agent.connected", "data": {
                             "offer_id": "o1", "agent_id": "1001", "queue": "support"}})
            time.sleep(0.3)
            at_caller = heard(peer, 2.0)
            assert dominates(at_caller, AGENT_HZ, CALLER_HZ), "the caller does not hear " \
                "the agent"

            # The agent hangs up: AgentGone, and the caller goes on at after_agent.
            phone.keys("/hangup\n")
            phone.wait_for("terminate", timeout_s=10, since=invite_seen)
            ctl.wait_for("acd.agent_gone", call_id=call_id)
            caller.join(timeout=60)
            assert results and results[0].ok, results and results[0].output
            ended = ctl.ended(call_id) or {}
            assert ended.get("reason") == "normal", ended
            at_agent = heard_by(phone)
    finally:
        peer.close()
    kinds = [k for k, _ in ctl.events(call_id)]
    for step in ("queue.joined", "queue.accepted", "agent.offered", "agent.answered",
                 "agent.connected", "agent.hangup", "recording", "queue.agent_done"):
        assert step in kinds, (step, kinds)
    assert kinds.index("agent.connected") < kinds.index("agent.hangup") < kinds.index(
        "queue.agent_done")
    plays = [d["prompts"] for k, d in ctl.events(call_id) if k == "play"]
    assert ["en-US:goodbye"] in plays  # after_agent
    assert dominates(at_agent, CALLER_HZ, AGENT_HZ), "the agent does not hear the caller"
    [rec] = [d for k, d in ctl.events(call_id) if k == "recording"]
    assert (rec["agent_id"], rec["queue"], rec["channels"]) == ("1001", "support", 2)
    path = Path(rec["path"])
    assert path.name == f"{call_id}-agent1.wav" and path.parent.parent.name == "recordings"
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert rec["duration_s"] > 1.0
    left, right = pcm[0::2], pcm[1::2]
    talk = slice(4000, 12000)  # 0.5 s to 1.5 s into the talk
    assert dominates(left[talk], CALLER_HZ, AGENT_HZ), "the left channel is not the caller"
    assert dominates(right[talk], AGENT_HZ, CALLER_HZ), "the right channel is not the agent"


def heard_by(phone: Baresip) -> npt.NDArray[np.int16]:
    """What baresip decoded from the worker (its sndfile dump, complete once the call ends)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        dumps = sorted(phone.audio_dir.glob("dump-*-dec.wav"))
        if dumps:
            try:
                with wave.open(str(dumps[0]), "rb") as w:
                    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                if pcm.size > 8000:
                    return pcm[-16000:]  # the end of the call: the bridge
            except (wave.Error, EOFError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"baresip left no audio dump in {phone.audio_dir}")


def test_agent_hold_from_baresip_gives_the_caller_music_and_resume_brings_the_agent_back(
        tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0xACD00002)
    try:
        with acd_worker(tmp_path) as (wp, ctl), baresip_phone(tmp_path, "1002") as (phone,
                                                                                    uri):
            caller, results = start_caller(tmp_path, wp.target, peer)
            call_id = ctl.wait_for("acd.join")["call_id"]
            ctl.send(m.Offer(call_id, "o1", "1002", uri, "support", 1.0, 20.0))
            ctl.wait_for("acd.answered", offer_id="o1")
            stream_pcm(peer, peer.first_source(), tone(CALLER_HZ, 1.0))
            ctl.send(m.Connect(call_id, "o1", "1002"))
            up = phone.wait_for("Call established", timeout_s=10)
            time.sleep(0.5)
            assert dominates(heard(peer, 1.0), AGENT_HZ, CALLER_HZ)
            phone.keys("x")  # baresip's "call hold": re-INVITE a=sendonly
            ctl.wait_for("acd.held", call_id=call_id)
            time.sleep(0.3)
            music = heard(peer, 1.5)
            # The loop starts on its C chord (C3, C4): music, not the agent's tone.
            assert dominates(music, 261.6, AGENT_HZ), "the held caller does not hear music"
            phone.keys("X")  # resume
            ctl.wait_for("acd.resumed", call_id=call_id)
            time.sleep(0.5)
            assert dominates(heard(peer, 1.0), AGENT_HZ, CALLER_HZ), "the agent is not back"
            phone.keys("/hangup\n")
            phone.wait_for("terminate", timeout_s=10, since=up)
            ctl.wait_for("acd.agent_gone", call_id=call_id)
            caller.join(timeout=60)
            assert results and results[0].ok, results and results[0].output
    finally:
        peer.close()
    kinds = [k for k, _ in ctl.events(call_id)]
    assert kinds.count("agent.held") == 1 and kinds.count("agent.resumed") == 1


def test_a_caller_who_hangs_up_while_the_agent_phone_rings_cancels_it(tmp_path: Path) -> None:
    peer = RtpPeer(ssrc=0xACD00003)
    try:
        with acd_worker(tmp_path) as (wp, ctl), baresip_phone(
                tmp_path, "1003", answermode="manual") as (phone, uri):
            scenario = sipp.Caller("gives_up", media_port=peer.port).pause(4000) \
                .caller_hangs_up()
            results: list[sipp.SippResult] = []
            caller = threading.Thread(target=lambda: results.append(
                sipp.run(scenario, wp.target, tmp_path, timeout_s=30)), daemon=True)
            caller.start()
            call_id = ctl.wait_for("acd.join")["call_id"]
            ctl.send(m.Queued(call_id, "support", 1, 0))
            ctl.send(m.Offer(call_id, "o1", "1003", uri, "support", 1.0, 20.0))
            ctl.wait_for("acd.ringing", offer_id="o1")
            rang = phone.wait_for("Incoming call", timeout_s=10)
            ctl.wait_for("acd.caller_gone", call_id=call_id, timeout_s=20)
            phone.wait_for("session closed", timeout_s=10, since=rang)  # our CANCEL came
            caller.join(timeout=30)
            assert results and results[0].ok, results and results[0].output
            assert ctl.ended(call_id)["reason"] == "caller_hangup"  # type: ignore[index]
    finally:
        peer.close()
    assert not [x for x in ctl.received if x["type"] in ("acd.offer_failed",
                                                        "acd.answered")]


def test_an_offer_to_sip_id_at_the_agent_domain_reaches_the_phone_registered_at_the_front(
        tmp_path: Path) -> None:
    """worker.outbound_proxy: the agent leg goes through Kamailio (registrar with digest),
    which finds baresip's registered contact; the worker never learns the phone's address."""
    base = port_block()
    worker_port = base + 2
    store_path = tmp_path / "front.sqlite3"
    store = CallStore(store_path)
    ha1, ha1b = make_hashes("1001", REALM, DOMAIN, PASSWORD)
    store.add_agent_sip(AgentSip("1001", "Ann Agent", REALM, ha1, ha1b, (), 1.0, 1.0))
    store.close()
    front = KamailioProcess(KamailioConfig(
        port=base, run_dir=tmp_path / "front", store_path=store_path, agent_domain=DOMAIN,
        auth_realm=REALM, log_level="notice",
        destinations=[Destination(f"sip:127.0.0.1:{worker_port}", 4, disabled=True)]))
    front.start()
    peer = RtpPeer(ssrc=0xACD00004)
    try:
        with baresip_agent(tmp_path, base, "1001", PASSWORD) as phone, acd_worker(
                tmp_path, env={"IVR_WORKER_OUTBOUND_PROXY": f"127.0.0.1:{base}"},
                port=worker_port) as (wp, ctl):
            ready = json.loads(wp.wait_for('"worker.ready"'))
            assert ready["outbound_proxy"] == f"127.0.0.1:{base}"
            wait_until(lambda: bool(front.agent_contacts("1001")), 15, "1001 registered")
            caller, results = start_caller(tmp_path, wp.target, peer)
            call_id = ctl.wait_for("acd.join")["call_id"]
            ctl.send(m.Offer(call_id, "o1", "1001", f"sip:1001@{DOMAIN}", "support", 3.0,
                             20.0))
            ctl.wait_for("acd.answered", offer_id="o1", timeout_s=20)
            up = phone.wait_for("Call established", timeout_s=10)
            ctl.send(m.Connect(call_id, "o1", "1001"))
            ctl.wait_for("store", op="call_event", call_id=call_id,
                         args={"kind": "agent.connected", "data": {
                             "offer_id": "o1", "agent_id": "1001", "queue": "support"}})
            phone.keys("/hangup\n")
            phone.wait_for("terminate", timeout_s=10, since=up)
            ctl.wait_for("acd.agent_gone", call_id=call_id)
            caller.join(timeout=60)
            assert results and results[0].ok, results and results[0].output
    finally:
        peer.close()
        front.stop()


def test_with_a_queue_in_the_flow_a_worker_takes_two_callers_and_refuses_the_third(
        tmp_path: Path) -> None:
    peers = [RtpPeer(ssrc=0xACD00010 + i) for i in range(2)]
    try:
        with acd_worker(tmp_path) as (wp, ctl):
            capacity = json.loads(wp.wait_for('"worker.capacity"'))
            assert (capacity["legs"], capacity["legs_per_caller"], capacity["callers"]) == \
                (4, 2, 2)
            callers = [start_caller(tmp_path, wp.target, p, f"waiting{i}")
                       for i, p in enumerate(peers)]
            deadline = time.monotonic() + 20
            while len([x for x in ctl.received if x["type"] == "acd.join"]) < 2:
                assert time.monotonic() < deadline, "two callers never joined the queue"
                time.sleep(0.1)
            refused = (Path(__file__).parent / "sipp" / "expect_unavailable.xml").read_text()
            result = sipp.run(refused, wp.target, tmp_path, timeout_s=10)
            assert result.ok, result.output + result.errors
            joins = [x for x in ctl.received if x["type"] == "acd.join"]
            assert len(joins) == 2
            for join in joins:  # the ACD sends them on: the IVR hangs up
                ctl.send(m.Exit(join["call_id"], "support", "no-agents"))
            for thread, results in callers:
                thread.join(timeout=30)
                assert results and results[0].ok, results and results[0].output
    finally:
        for p in peers:
            p.close()


def test_an_offer_for_a_call_the_worker_does_not_hold_is_refused(tmp_path: Path) -> None:
    with acd_worker(tmp_path) as (_wp, ctl):
        ctl.send(m.Offer("no-such-call", "o5", "1001", "sip:1001@127.0.0.1:9", "support",
                         1.0, 20.0))
        failed = ctl.wait_for("acd.offer_failed")
        assert (failed["call_id"], failed["offer_id"], failed["reason"]) == (
            "no-such-call", "o5", "error")
