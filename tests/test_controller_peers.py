"""The controller's socket serves only the zygote it started and that zygote's workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from ivr.peers import PeerCredentials, refusal
from ivr.protocol import encode
from tests import sipp
from tests.conftest import start_stack
from tests.test_pool import finish, hold_calls, wait_rows

ZYGOTE = {"type": "hello", "role": "zygote", "protocol": 1, "pid": 100}
WORKER = {"type": "hello", "role": "worker", "protocol": 1, "slot": 0, "pid": 200}


def _peer(pid: int) -> PeerCredentials:
    return PeerCredentials(pid, 1000, 1000)


@pytest.mark.parametrize("hello, peer, zygote_connected, worker_pid, why", [
    (ZYGOTE, _peer(100), False, None, None),
    (ZYGOTE, _peer(101), False, None, "not the zygote this controller started"),
    (ZYGOTE, _peer(100), True, None, "a zygote is already connected"),
    (WORKER, _peer(200), False, 200, None),
    (WORKER, _peer(201), False, 200, "belongs to the worker with pid 200"),
    (WORKER, _peer(200), False, None, "no worker was forked for slot 0"),
    (WORKER, None, False, 200, "credentials are unknown"),
    ({**WORKER, "role": "agent"}, _peer(200), False, 200, "unknown role 'agent'"),
])
def test_a_peer_is_admitted_only_if_the_kernel_names_the_process_we_started(
        hello: dict[str, object], peer: PeerCredentials | None, zygote_connected: bool,
        worker_pid: int | None, why: str | None) -> None:
    got = refusal(hello, peer, zygote_pid=100, zygote_connected=zygote_connected,
                  worker_pid=worker_pid)
    if why is None:
        assert got is None
    else:
        assert got is not None and why in got


def _connect(path: Path, *lines: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.sendall(b"".join(lines))
    s.settimeout(10)
    return s


@pytest.mark.sip
@pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")
@pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists(), reason="kamailio not installed")
def test_a_forged_worker_and_a_second_zygote_are_refused_and_the_pool_keeps_serving(
        tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=2)
    sock_path = stack.var_dir / "run" / "controller.sock"
    try:
        zygote_pid = json.loads(stack.wait_for('"zygote.ready"'))["pid"]
        real = stack.worker_pids()
        # A local process posing as worker w000 (its real pid in the hello) writes a record.
        forged = _connect(
            sock_path,
            encode("hello", role="worker", protocol=1, worker="w000", slot=0, pid=real["w000"],
                   sip="127.0.0.1:1", max_calls=4, flow="default", flow_version=1),
            encode("store", op="call_arrived", call_id="forged-call", at=time.time(),
                   args={"sip_call_id": "x", "worker": "w000", "from_uri": "sip:a@b",
                         "to_uri": "sip:c@d", "flow": "default", "flow_version": 1}))
        with forged:
            assert forged.recv(100) == b""  # closed at once
        line = json.loads(stack.wait_for('"controller.peer_refused"'))
        assert (line["role"], line["pid"], line["uid"]) == ("worker", os.getpid(), os.getuid())
        # A second "zygote", with the real zygote's pid in its hello, is refused too.
        fake_zygote = _connect(
            sock_path, encode("hello", role="zygote", protocol=1, pid=zygote_pid))
        with fake_zygote:
            assert fake_zygote.recv(100) == b""
            deadline = time.monotonic() + 10
            while sum('"controller.peer_refused"' in x for x in stack.lines) < 2:
                assert time.monotonic() < deadline, "the second zygote was not refused"
                time.sleep(0.05)
            # The next spawn order still reaches the real zygote: a killed worker comes back.
            os.kill(real["w001"], signal.SIGKILL)
            deadline = time.monotonic() + 20
            while stack.worker_pids()["w001"] == real["w001"]:
                assert time.monotonic() < deadline, "slot w001 was never served again"
                time.sleep(0.1)
        # The forged worker's record never reached the store, and the real ones still serve.
        time.sleep(2.5)  # let Kamailio's OPTIONS probe see the new worker
        calls = hold_calls(stack, tmp_path, "after", 4,
                           sipp.Caller("after").pause(500).caller_hangs_up(), 17800)
        rc, out = finish(calls)
        assert rc == 0, out
        got = wait_rows(stack.db, 4)
        assert len(got) == 4 and "forged-call" not in {r["call_id"] for r in got}
        assert stack.worker_pids()["w000"] == real["w000"]  # the real w000 was left alone
    finally:
        assert stack.stop() == 0
    con = sqlite3.connect(stack.db)
    assert con.execute("SELECT COUNT(*) FROM call_events WHERE call_id = 'forged-call'"
                       ).fetchone()[0] == 0
