"""Agents at the front: their phones register through Kamailio with digest against the
store's agents_sip hashes (baresip here, a real SIP stack we did not write), and a worker's
INVITE to sip:ID@domain reaches the registered phone; a sipp UAC plays the worker, from an
address listed in the dispatcher set (disabled, so it gets no callers and no probes)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.agent_credentials import AgentSip, make_hashes
from ivr.kamailio import (
    Destination,
    KamailioConfig,
    KamailioConfigError,
    KamailioProcess,
    render,
)
from ivr.store import CallStore
from tests.agent_phone import baresip_agent
from tests.test_interop_baresip import BARESIP, MODULE_DIR
from tests.test_kamailio import SCENARIOS, SIPP, port_block, wait_until, with_peers

PASSWORD = "Agent-Secret-1001"
REALM = "callcenter"
DOMAIN = "127.0.0.1"


def test_the_registrar_needs_the_store_and_a_plain_domain(tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError) as err:
        KamailioConfig(agent_domain="bad domain")
    assert "give store_path too" in str(err.value)
    assert "'bad domain' is not a host name" in str(err.value)


def test_without_an_agent_domain_there_is_no_registrar(tmp_path: Path) -> None:
    off = render(KamailioConfig(run_dir=tmp_path, store_path=tmp_path / "s.sqlite3"))
    assert "#!define WITH_AGENTS" not in off["kamailio.cfg"]
    on = render(KamailioConfig(run_dir=tmp_path, store_path=tmp_path / "s.sqlite3",
                               agent_domain="agents.example.com"))["kamailio.cfg"]
    assert "#!define WITH_AGENTS" in on and '$td != "agents.example.com"' in on


@dataclass
class AgentRig:
    front: KamailioProcess
    worker_port: int  # the sipp "worker" UAC's own port (listed in the dispatcher set)
    tmp_path: Path

    def registered(self, agent_id: str) -> bool:
        return bool(self.front.agent_contacts(agent_id))

    def worker_calls(self, scenario: str, agent_id: str, hold_ms: int = 500,
                     timeout_s: int = 20, port: int | None = None
                     ) -> subprocess.CompletedProcess[str]:
        """One sipp run from the worker's port (or ``port``, also listed)."""
        assert SIPP is not None
        port = port or self.worker_port
        errors = self.tmp_path / f"{scenario}.{port}.errors.log"
        return subprocess.run(
            [SIPP, f"127.0.0.1:{self.front.config.port}", "-sf", str(SCENARIOS / scenario),
             "-s", agent_id, "-i", "127.0.0.1", "-p", str(port),
             "-mp", str(26000 + 10 * (port - 5600)), "-m", "1", "-d",
             str(hold_ms), "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
             "-trace_err", "-error_file", str(errors), "-trace_msg", "-message_file",
             str(self.tmp_path / f"{scenario}.{port}.messages.log")],
            cwd=self.tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout_s + 30)

    def log(self) -> str:
        return self.front.log_path.read_text(errors="replace")


@pytest.fixture
def agent_rig(tmp_path: Path) -> Iterator[AgentRig]:
    base = port_block()
    store_path = tmp_path / "ivr.sqlite3"
    store = CallStore(store_path)
    ha1, ha1b = make_hashes("1001", REALM, DOMAIN, PASSWORD)
    store.add_agent_sip(AgentSip("1001", "Ann Agent", REALM, ha1, ha1b, (), 1.0, 1.0))
    store.close()
    worker_port = base + 2
    cfg = KamailioConfig(
        port=base, run_dir=tmp_path / "front", store_path=store_path, agent_domain=DOMAIN,
        auth_realm=REALM, log_level="notice",
        destinations=[Destination(f"sip:127.0.0.1:{worker_port}", 4, disabled=True),
                      Destination(f"sip:127.0.0.1:{worker_port + 1}", 4, disabled=True),
                      Destination(f"sip:127.0.0.1:{base + 1}", 4)])  # a real-ish worker
    front = KamailioProcess(cfg)
    front.start()
    try:
        yield AgentRig(front, worker_port, tmp_path)
    finally:
        front.stop()


needs_baresip = pytest.mark.skipif(BARESIP is None or MODULE_DIR is None,
                                   reason="baresip not installed")


@with_peers
@needs_baresip
def test_an_agent_registers_with_digest_and_a_worker_call_reaches_its_phone(
        agent_rig: AgentRig, tmp_path: Path) -> None:
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD) as phone:
        phone.wait_for("200 OK", timeout_s=15)
        wait_until(lambda: agent_rig.registered("1001"), 10, "1001 in the location table")
        # the worker calls, the phone answers by itself, the worker hangs up
        done = agent_rig.worker_calls("worker_calls_agent.xml", "1001", hold_ms=500)
        assert done.returncode == 0, (done.stderr[-1500:], phone.lines[-40:])
        up = phone.wait_for("Call established", timeout_s=10)
        phone.wait_for("session closed", timeout_s=10, since=up)  # the worker's BYE came
        # the agent hangs up this time: its BYE goes through the front to the worker
        result: list[subprocess.CompletedProcess[str]] = []
        t = threading.Thread(target=lambda: result.append(
            agent_rig.worker_calls("worker_calls_agent_hangup.xml", "1001")))
        t.start()
        second = phone.wait_for("Call established", timeout_s=15, since=up + 1)
        phone.keys("/hangup\n")
        phone.wait_for("terminate", timeout_s=10, since=second)
        t.join(timeout=40)
        assert result and result[0].returncode == 0, result and result[0].stderr[-1500:]
    assert PASSWORD not in agent_rig.log()


@with_peers
def test_a_call_to_an_agent_who_is_not_registered_gets_480(agent_rig: AgentRig) -> None:
    done = agent_rig.worker_calls("worker_calls_agent_480.xml", "1001")
    assert done.returncode == 0, done.stderr[-1500:]
    done = agent_rig.worker_calls("worker_calls_agent_480.xml", "nobody")
    assert done.returncode == 0, done.stderr[-1500:]


@with_peers
@needs_baresip
def test_a_wrong_password_is_refused_logged_without_the_secret_and_not_registered(
        agent_rig: AgentRig, tmp_path: Path) -> None:
    wrong = "Not-The-Password-9"
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", wrong) as phone:
        phone.wait_for("403 Forbidden", timeout_s=15)
    assert not agent_rig.registered("1001")
    log = agent_rig.log()
    assert "register: agent 1001 from 127.0.0.1:" in log and "wrong password" in log
    assert wrong not in log and PASSWORD not in log
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1002", PASSWORD,
                       name="unknown") as phone:
        phone.wait_for("403 Forbidden", timeout_s=15)
    assert not agent_rig.registered("1002")
    assert "register: unknown agent 1002" in agent_rig.log()


@with_peers
@needs_baresip
def test_a_busy_agents_486_is_relayed_to_the_worker(agent_rig: AgentRig,
                                                   tmp_path: Path) -> None:
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD) as phone:
        phone.wait_for("200 OK", timeout_s=15)
        wait_until(lambda: agent_rig.registered("1001"), 10, "1001 in the location table")
        result: list[subprocess.CompletedProcess[str]] = []
        first = threading.Thread(target=lambda: result.append(agent_rig.worker_calls(
            "worker_calls_agent.xml", "1001", hold_ms=4000)))
        first.start()
        phone.wait_for("Call established", timeout_s=15)
        # a second worker rings the same phone (call_max_calls 1): baresip answers 486
        busy = agent_rig.worker_calls("worker_calls_agent_486.xml", "1001",
                                      port=agent_rig.worker_port + 1)
        first.join(timeout=40)
        assert busy.returncode == 0, busy.stderr[-1500:]
        assert result and result[0].returncode == 0, result and result[0].stderr[-1500:]


@with_peers
@needs_baresip
def test_a_callers_invite_to_an_agents_address_goes_to_the_workers_not_the_phone(
        agent_rig: AgentRig, tmp_path: Path) -> None:
    assert SIPP is not None
    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD) as phone:
        phone.wait_for("200 OK", timeout_s=15)
        wait_until(lambda: agent_rig.registered("1001"), 10, "1001 in the location table")
        port = agent_rig.worker_port + 5  # a stranger: not in the dispatcher set
        subprocess.run(
            [SIPP, f"127.0.0.1:{agent_rig.front.config.port}", "-sf",
             str(SCENARIOS / "worker_calls_agent_480.xml"), "-s", "1001", "-i", "127.0.0.1",
             "-p", str(port), "-mp", str(26000 + 10 * (port - 5600)), "-m", "1",
             "-nostdin", "-timeout", "30s", "-timeout_error"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        assert not any("answering call" in line or "Incoming call" in line
                       for line in phone.lines)
    log = agent_rig.log()
    assert "No Outbound Routing" not in log
    # dispatched as a caller's call: the one active slot has no worker behind it
    assert "dispatch: every worker refused" in log or "refused: " in log


@with_peers
@needs_baresip
def test_an_agent_added_with_the_cli_registers_at_the_running_stack(tmp_path: Path) -> None:
    from tests.conftest import start_stack

    stack = start_stack(tmp_path, workers=1)
    try:
        added = subprocess.run(
            [sys.executable, "-m", "ivr.cli", "agent", "add", "2002", "--name", "Bo",
             "--password", PASSWORD], env=stack.env, capture_output=True, text=True,
            timeout=60)
        assert added.returncode == 0, added.stderr
        with baresip_agent(tmp_path, stack.port, "2002", PASSWORD) as phone:
            phone.wait_for("200 OK", timeout_s=15)
            phone.wait_for("registered successfully", timeout_s=15)
    finally:
        assert stack.stop() == 0


def _header_of(message: str, name: str) -> str:
    for line in message.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


@with_peers
@needs_baresip
def test_an_agents_in_dialog_request_goes_only_to_the_worker_that_called_it(
        agent_rig: AgentRig, tmp_path: Path) -> None:
    import socket

    with baresip_agent(tmp_path, agent_rig.front.config.port, "1001", PASSWORD) as phone:
        phone.wait_for("200 OK", timeout_s=15)
        wait_until(lambda: agent_rig.registered("1001"), 10, "1001 in the location table")
        result: list[subprocess.CompletedProcess[str]] = []
        call = threading.Thread(target=lambda: result.append(agent_rig.worker_calls(
            "worker_calls_agent.xml", "1001", hold_ms=3000)))
        call.start()
        phone.wait_for("Call established", timeout_s=15)
        log = tmp_path / f"worker_calls_agent.xml.{agent_rig.worker_port}.messages.log"
        wait_until(lambda: log.exists() and "SIP/2.0 200 " in log.read_text(), 10,
                   "the phone's 200 in the worker's log")
        ok = next(m for m in log.read_text(errors="replace").split("\n-----")
                  if "SIP/2.0 200 " in m and "CSeq: 1 INVITE" in m)
        ok = ok[ok.index("SIP/2.0 200 "):]
        route = _header_of(ok, "Record-Route")
        assert ";did=" in route or "did=" in route, ok
        port = agent_rig.front.config.port
        other_worker = f"sip:127.0.0.1:{agent_rig.worker_port + 1}"  # listed, did not call
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            local = s.getsockname()[1]
            forged = (
                f"INFO {other_worker} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKforged1;rport\r\n"
                f"Route: {route}\r\n"
                f"From: {_header_of(ok, 'To')}\r\nTo: {_header_of(ok, 'From')}\r\n"
                f"Call-ID: {_header_of(ok, 'Call-ID')}\r\nCSeq: 50 INFO\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
            s.sendto(forged.encode(), ("127.0.0.1", port))
            answer = s.recv(65535).decode(errors="replace").split("\r\n")[0]
        assert answer == "SIP/2.0 403 Not A Call Worker"
        call.join(timeout=40)
        assert result and result[0].returncode == 0, result and result[0].stderr[-1500:]
