"""The SIP front's security and accounting: forged in-dialog requests, admission limits,
blocked-call records. A real Kamailio between real sipp peers and raw UDP SIP, on loopback
(127.0.0.2 plays a second source address); run in a loopback-only network namespace::

    scripts/in-netns .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_front_security.py
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.store import CallStore
from tests import sipp
from tests.conftest import start_stack
from tests.test_kamailio import (
    OK,
    SCENARIOS,
    SIPP,
    Rig,
    rig_factory,  # noqa: F401  (the fixture)
    wait_until,
    with_peers,
)

# ---- raw SIP over UDP, from any loopback address


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_reply(data: bytes) -> Reply | None:
    head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", head[0])
    if m is None:
        return None
    headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in head[1:])]
    return Reply(int(m.group(1)), m.group(2), headers)


class RawPeer:
    """One UDP socket on ``host`` that sends hand-made requests to the front."""

    def __init__(self, front_port: int, host: str = "127.0.0.1") -> None:
        self.front = ("127.0.0.1", front_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, *, call_id: str, from_tag: str,
                to_tag: str = "", cseq: int = 1, routes: tuple[str, ...] = (),
                sdp: bool = False) -> bytes:
        body = ""
        if sdp:
            body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    "m=audio 29000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        to = f"<sip:ivr@127.0.0.1:{self.front[1]}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)}",
            *(f"Route: {r}" for r in routes),
            "Max-Forwards: 70",
            f"From: <sip:raw@{self.host}:{self.port}>;tag={from_tag}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:raw@{self.host}:{self.port}>",
        ]
        if sdp:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def ask(self, data: bytes, timeout_s: float = 5.0) -> Reply | None:
        """Send one request; its final reply (provisional ones skipped), or None."""
        self.sock.sendto(data, self.front)
        return self.final(timeout_s)

    def final(self, timeout_s: float = 5.0) -> Reply | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                reply = parse_reply(self.sock.recv(65535))
            except TimeoutError:
                return None
            if reply is not None and reply.status >= 200:
                return reply
        return None


class ThirdParty:
    """A UDP socket on 127.0.0.1 that is no part of the stack: it counts what reaches it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.setblocking(False)

    @property
    def uri(self) -> str:
        return f"sip:victim@127.0.0.1:{self.port}"

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


def new_ids() -> tuple[str, str]:
    return f"{secrets.token_hex(8)}@forger", secrets.token_hex(4)


# ---- item: forged in-dialog requests


@with_peers
def test_forged_in_dialog_requests_never_reach_a_third_party(
        rig_factory: Callable[..., Rig]) -> None:  # noqa: F811
    rig = rig_factory([OK], max_load=4)
    port = rig.front.config.port
    front_route = f"<sip:127.0.0.1:{port};lr>"
    victim = ThirdParty()
    forger = RawPeer(port)
    caller = RawPeer(port)
    try:
        # 1. dialogs the front never set up: a To-tag and a Route naming the front
        answers = []
        for method in ("BYE", "INFO", "INVITE", "OPTIONS", "ACK"):
            call_id, tag = new_ids()
            msg = forger.request(method, victim.uri, call_id=call_id, from_tag=tag,
                                 to_tag="forged", routes=(front_route,),
                                 sdp=method == "INVITE")
            answers.append((method, forger.ask(msg, timeout_s=2.0 if method == "ACK" else 5.0)))
        for method, reply in answers:
            if method == "ACK":
                assert reply is None
            else:  # refused for its target (403) before the dialog is even looked up
                assert reply is not None and reply.status == 403, (method, reply)
        # aimed at a worker, but no dialog the front knows: 404
        call_id, tag = new_ids()
        reply = forger.ask(forger.request("BYE", rig.workers[0].uri, call_id=call_id,
                                          from_tag=tag, to_tag="forged", routes=(front_route,)))
        assert reply is not None and reply.status == 404
        assert rig.workers[0].received("BYE ") == []

        # 2. a real call through the front; its Call-ID, tags and recorded route copied
        call_id, tag = new_ids()
        ok = caller.ask(caller.request("INVITE", f"sip:ivr@127.0.0.1:{port}", call_id=call_id,
                                       from_tag=tag, sdp=True))
        assert ok is not None and ok.status == 200
        to_tag = ok.header("To").split("tag=")[1]
        routes = tuple(ok.all("Record-Route"))[::-1]
        assert routes and all("did=" in r for r in routes) or "did=" in ",".join(routes)
        contact = re.search(r"<([^>]+)>", ok.header("Contact"))
        assert contact is not None
        worker_target = contact.group(1)
        caller.sock.sendto(caller.request("ACK", worker_target, call_id=call_id, from_tag=tag,
                                          to_tag=to_tag, routes=routes), caller.front)
        # the same dialog, but the Request-URI names the third party: refused
        for n, method in enumerate(("INFO", "INVITE", "BYE"), start=2):
            msg = caller.request(method, victim.uri, call_id=call_id, from_tag=tag,
                                 to_tag=to_tag, cseq=n, routes=routes, sdp=method == "INVITE")
            reply = caller.ask(msg)
            assert reply is not None and reply.status == 403, (method, reply)
        time.sleep(0.5)  # anything relayed would have arrived on loopback by now
        assert victim.received() == []

        # the call's own in-dialog requests still work: its BYE reaches the worker
        bye = caller.request("BYE", worker_target, call_id=call_id, from_tag=tag,
                             to_tag=to_tag, cseq=9, routes=routes)
        reply = caller.ask(bye)
        assert reply is not None and reply.status == 200
        assert len(rig.workers[0].received("BYE ")) == 1
        rig.wait_loads({rig.workers[0].uri: 0})
    finally:
        victim.close()
        forger.close()
        caller.close()


@with_peers
@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_calls_up_when_kamailio_restarts_can_still_be_hung_up_through_the_new_front(
        rig_factory: Callable[..., Rig], how: str) -> None:  # noqa: F811
    rig = rig_factory([OK], max_load=4)
    (worker,) = rig.workers
    held = rig.callers.start("front_caller.xml", calls=2, concurrent=2, hold_ms=6000,
                             timeout_s=30)
    wait_until(lambda: rig.front.rpc("dlg.list").count("state: 4") == 2, 20, "2 calls ACKed")
    # the dialogs reach their table within the dialog module's db_update_period (2 s; not
    # on a clean stop either): a call set up in the last 2 s before a crash is not kept
    def stored() -> int:
        with contextlib.closing(sqlite3.connect(rig.front.run_dir / "dialogs.sqlite3")) as db:
            return int(db.execute("SELECT COUNT(*) FROM dialog WHERE state = 4").fetchone()[0])
    wait_until(lambda: stored() == 2, 30, "2 dialogs stored")
    if how == "kill -9":
        assert rig.front.pid is not None
        os.killpg(rig.front.pid, signal.SIGKILL)
    rig.front.stop()
    rig.front.start()  # a new Kamailio, as a supervisor would start it
    # the callers' BYEs (after their 6 s hold) pass the new front's in-dialog checks
    rig.callers.finish(held, timeout_s=40)
    assert len(worker.received("BYE ")) == 2


# ---- items: admission limits and blocked-call records


def sipp_call(target: str, scenario: str, workdir: Path, *, source: str, port: int,
              calls: int = 1, hold_ms: int = 0, timeout_s: int = 20,
              extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """Start sipp callers from ``source`` (an address on loopback)."""
    assert SIPP is not None
    cmd = [SIPP, target, "-sf", str(SCENARIOS / scenario), "-i", source, "-p", str(port),
           "-mp", str(port + 10000), "-m", str(calls), "-l", str(calls), "-r", "20",
           "-d", str(hold_ms), "-t", "u1", "-nostdin", "-timeout", f"{timeout_s}s",
           "-timeout_error", "-trace_err", "-error_file", str(workdir / f"sipp{port}.log"),
           *extra]
    return subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout_s: float = 40) -> None:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("sipp still running") from None
    assert proc.returncode == 0, f"sipp exit {proc.returncode}: {err[-1500:]}"


def blocked_rows(store: CallStore, reason: str, n: int = 1) -> list[object]:
    wait_until(lambda: store.blocked_counts().get(reason, 0) >= n, 10,
               f"{n} blocked call(s) recorded as {reason}")
    return [b for b in store.blocked_calls(100) if b.reason == reason]


@pytest.fixture
def store(tmp_path: Path) -> CallStore:
    return CallStore(tmp_path / "ivr.sqlite3")


@with_peers
def test_one_source_over_its_limit_gets_503_while_another_source_is_answered(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK, OK], max_load=4, max_calls_per_source=2, store_path=store.path)
    port = rig.front.config.port
    target = f"127.0.0.1:{port}"
    held = sipp_call(target, "front_caller.xml", tmp_path, source="127.0.0.1", port=port + 10,
                     calls=2, hold_ms=5000)
    rig.wait_loads({w.uri: 1 for w in rig.workers})
    # a third call from the same address: refused at once, with Retry-After
    flooder = RawPeer(port)
    try:
        call_id, tag = new_ids()
        reply = flooder.ask(flooder.request("INVITE", f"sip:ivr@{target}", call_id=call_id,
                                            from_tag=tag, sdp=True))
    finally:
        flooder.close()
    assert reply is not None and reply.status == 503
    assert reply.header("Retry-After") == str(rig.front.config.retry_after_s)
    # another address still gets through while the first holds its two calls
    finish(sipp_call(target, "front_caller.xml", tmp_path, source="127.0.0.2", port=port + 11,
                     hold_ms=200))
    finish(held)
    (row,) = blocked_rows(store, "source_limit")
    assert (row.sip_code, row.source, row.sip_call_id) == (503, "127.0.0.1", call_id)
    assert row.from_uri.startswith("sip:raw@127.0.0.1:") and row.to_uri == f"sip:ivr@{target}"


@with_peers
def test_past_the_global_limit_every_source_gets_503_and_a_record(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK, OK], max_load=4, max_calls=2, store_path=store.path)
    port = rig.front.config.port
    target = f"127.0.0.1:{port}"
    held = sipp_call(target, "front_caller.xml", tmp_path, source="127.0.0.1", port=port + 10,
                     calls=2, hold_ms=4000)
    rig.wait_loads({w.uri: 1 for w in rig.workers})
    finish(sipp_call(target, "front_caller_refused.xml", tmp_path, source="127.0.0.2",
                     port=port + 11))
    finish(held)
    (row,) = blocked_rows(store, "global_limit")
    assert (row.sip_code, row.source) == (503, "127.0.0.2")
    # the limit counts calls up, not calls ever: once they ended, a call is answered
    finish(sipp_call(target, "front_caller.xml", tmp_path, source="127.0.0.2", port=port + 12))


@with_peers
def test_a_full_stack_answers_486_and_records_the_call_as_blocked(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK], max_load=1, store_path=store.path)
    port = rig.front.config.port
    target = f"127.0.0.1:{port}"
    held = sipp_call(target, "front_caller.xml", tmp_path, source="127.0.0.1", port=port + 10,
                     hold_ms=4000)
    rig.wait_loads({rig.workers[0].uri: 1})
    finish(sipp_call(target, "front_caller_busy.xml", tmp_path, source="127.0.0.1",
                     port=port + 11))
    finish(held)
    (row,) = blocked_rows(store, "stack_full")
    assert row.sip_code == 486 and row.source == "127.0.0.1"
    assert row.from_uri.startswith("sip:refused") and row.sip_call_id
    assert store.get_call(row.sip_call_id) is None  # a refused call is no call record


@with_peers
def test_with_no_worker_up_the_caller_gets_503_so_a_carrier_reroutes(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK], store_path=store.path, max_calls=1, max_calls_per_source=1)
    rig.front.set_state(rig.workers[0].uri, "disabled")
    port = rig.front.config.port
    finish(sipp_call(f"127.0.0.1:{port}", "front_caller_refused.xml", tmp_path,
                     source="127.0.0.1", port=port + 10, calls=3))
    rows = blocked_rows(store, "no_worker", 3)
    assert [b.sip_code for b in rows] == [503] * 3
    # a refused call holds no place against the limits (1 call, 1 per source, here)
    assert store.blocked_counts() == {"no_worker": 3}
    rig.front.set_state(rig.workers[0].uri, "active")
    finish(sipp_call(f"127.0.0.1:{port}", "front_caller.xml", tmp_path, source="127.0.0.1",
                     port=port + 11))


@with_peers
def test_every_invite_of_a_flood_is_counted_whether_pike_drops_it_or_it_is_refused(
        rig_factory: Callable[..., Rig], store: CallStore) -> None:  # noqa: F811
    rig = rig_factory([OK], pike_exempt=("127.0.0.1/32",), pike_max_requests=5,
                      pike_sampling_s=2, store_path=store.path)
    rig.front.set_state(rig.workers[0].uri, "disabled")  # what pike lets by: 503, no worker
    port = rig.front.config.port
    flooder = RawPeer(port, host="127.0.0.2")
    sent = 60
    try:
        for _ in range(sent):
            call_id, tag = new_ids()
            flooder.sock.sendto(flooder.request("INVITE", f"sip:ivr@127.0.0.1:{port}",
                                                call_id=call_id, from_tag=tag, sdp=True),
                                flooder.front)
    finally:
        flooder.close()
    wait_until(lambda: sum(store.blocked_counts().values()) >= sent, 30, "every INVITE counted")
    counts = store.blocked_counts()
    assert counts.keys() == {"flood", "no_worker"} and sum(counts.values()) == sent, counts
    assert all(b.sip_code == 0 for b in store.blocked_calls(100) if b.reason == "flood")


@with_peers
def test_a_quote_in_a_refused_callers_from_is_stored_as_it_came_and_counted_once(
        rig_factory: Callable[..., Rig], store: CallStore) -> None:  # noqa: F811
    rig = rig_factory([OK], max_calls_per_source=1, max_load=4, store_path=store.path)
    rig.front.set_state(rig.workers[0].uri, "disabled")
    port = rig.front.config.port
    peer = RawPeer(port)
    try:
        call_id, tag = new_ids()
        msg = peer.request("INVITE", f"sip:ivr@127.0.0.1:{port}", call_id=call_id,
                           from_tag=tag, sdp=True)
        msg = msg.replace(b"<sip:raw@", b"<sip:o'brien'),('x@")
        reply = peer.ask(msg)
    finally:
        peer.close()
    assert reply is not None and reply.status == 503
    (row,) = blocked_rows(store, "no_worker")
    assert row.from_uri.startswith("sip:o'brien'),('x@")
    # its retransmission (as if the 503 were lost) is answered again, not counted again
    peer = RawPeer(port)
    try:
        assert peer.ask(msg) is not None
        call_id2, tag2 = new_ids()
        assert peer.ask(peer.request("INVITE", f"sip:ivr@127.0.0.1:{port}", call_id=call_id2,
                                     from_tag=tag2, sdp=True)) is not None
    finally:
        peer.close()
    rows = blocked_rows(store, "no_worker", 2)
    assert sorted(b.sip_call_id for b in rows) == sorted([call_id, call_id2])
    assert store.recent_calls() == []  # the calls table is still there


@with_peers
def test_a_caller_outside_the_allowed_networks_gets_403_and_a_record(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK], max_load=4, allowed_networks=("127.0.0.1/32",),
                      store_path=store.path)
    port = rig.front.config.port
    outsider = RawPeer(port, host="127.0.0.2")
    try:
        call_id, tag = new_ids()
        reply = outsider.ask(outsider.request("INVITE", f"sip:ivr@127.0.0.1:{port}",
                                              call_id=call_id, from_tag=tag, sdp=True))
    finally:
        outsider.close()
    assert reply is not None and reply.status == 403
    assert rig.workers[0].invites() == set()
    (row,) = blocked_rows(store, "not_allowed")
    assert (row.sip_code, row.source, row.sip_call_id) == (403, "127.0.0.2", call_id)
    # the allowed network still gets through
    finish(sipp_call(f"127.0.0.1:{port}", "front_caller.xml", tmp_path, source="127.0.0.1",
                     port=port + 10, hold_ms=200))
    assert len(rig.workers[0].invites()) == 1


@with_peers
def test_with_digest_auth_a_caller_with_the_password_gets_through_and_one_without_gets_403(
        rig_factory: Callable[..., Rig], store: CallStore, tmp_path: Path) -> None:  # noqa: F811
    rig = rig_factory([OK], max_load=4, caller_auth="digest",
                      credentials=(("trunk1", "s3cret"),), store_path=store.path)
    port = rig.front.config.port
    target = f"127.0.0.1:{port}"
    (worker,) = rig.workers
    # no credentials at all: challenged (407, as a proxy does), which is not a refusal
    peer = RawPeer(port)
    try:
        call_id, tag = new_ids()
        reply = peer.ask(peer.request("INVITE", f"sip:ivr@{target}", call_id=call_id,
                                      from_tag=tag, sdp=True))
    finally:
        peer.close()
    assert reply is not None and reply.status == 407
    assert 'realm="callcenter"' in reply.header("Proxy-Authenticate")
    finish(sipp_call(target, "front_caller_auth.xml", tmp_path, source="127.0.0.1",
                     port=port + 10, hold_ms=200, extra=("-au", "trunk1", "-ap", "s3cret")))
    (invite,) = worker.received("INVITE ")
    assert "Authorization" not in invite  # consumed at the front
    finish(sipp_call(target, "front_caller_auth_refused.xml", tmp_path, source="127.0.0.2",
                     port=port + 11, extra=("-au", "trunk1", "-ap", "guess")))
    (row,) = blocked_rows(store, "not_allowed")
    assert (row.sip_code, row.source) == (403, "127.0.0.2")
    assert len(worker.invites()) == 1
    assert "s3cret" not in (rig.front.run_dir / "authdb" / "subscriber").read_text()


# ---- item: a dead worker's callers are hung up by the front


@with_peers
def test_the_front_ends_the_calls_of_a_dead_worker_with_a_bye_to_each_caller(
        rig_factory: Callable[..., Rig]) -> None:  # noqa: F811
    rig = rig_factory([OK, OK], max_load=2)
    a, b = rig.workers
    # four callers that each expect a BYE (and answer it 200); two calls on each worker
    held = rig.callers.start("front_caller_hung_up.xml", calls=4, concurrent=4, timeout_s=20)
    rig.wait_loads({a.uri: 2, b.uri: 2})
    # (a load counts from the INVITE; only a confirmed call, ACKed, can be ended by BYE)
    wait_until(lambda: rig.front.rpc("dlg.list").count("state: 4") == 4, 20, "4 calls ACKed")
    assert a.proc is not None
    a.proc.kill()  # kill -9: it sends nothing more
    a.proc.wait()
    a.proc = None
    assert len(rig.front.calls_of(a.uri)) == 2
    assert rig.front.end_calls_of(a.uri) == 2
    rig.wait_loads({a.uri: 0, b.uri: 2})  # the front's BYE released their load
    assert rig.front.calls_of(a.uri) == [] and len(rig.front.calls_of(b.uri)) == 2
    assert rig.front.end_calls_of(b.uri) == 2  # (b is alive: it answers the BYEs)
    rig.callers.finish(held)  # all four got a BYE and answered it
    rig.wait_loads({a.uri: 0, b.uri: 0})
    assert len(b.received("BYE ")) == 2


@with_peers
def test_kill_9_of_a_worker_hangs_up_its_callers_through_the_front(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1)
    try:
        # the caller expects the far end's BYE: only the front can send it once the worker
        # is dead (the flow itself would not hang up within this: it waits for keys)
        caller = sipp.Caller("hung_up_by_front").ivr_hangs_up(within_ms=15000)
        scenario = tmp_path / "hung_up_by_front.xml"
        scenario.write_text(caller.render())
        assert SIPP is not None
        proc = subprocess.Popen(
            [SIPP, stack.target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", "17350",
             "-mp", "27350", "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stack.wait_for('"call.answered"')
        (pid,) = stack.worker_pids().values()
        os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out[-2000:]  # it got a BYE and answered it
        stack.wait_for('"front.calls_ended"')
    finally:
        assert stack.stop() == 0


# ---- item: hostile input does not fill the log


@with_peers
def test_a_barrage_of_unparsable_datagrams_adds_a_few_log_lines_each_naming_the_source(
        rig_factory: Callable[..., Rig]) -> None:  # noqa: F811
    import random

    rig = rig_factory([OK], pike_exempt=("127.0.0.0/8",))
    port = rig.front.config.port
    log = rig.front.log_path
    before = len(log.read_bytes().splitlines())
    rnd = random.Random(16)
    broken_sip = (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
                  b"From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
                  b"Content-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hostile:
        hostile.bind(("127.0.0.2", 0))
        for i in range(200):
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40, 1200)))
            hostile.sendto(broken_sip if i % 2 else junk, ("127.0.0.1", port))
        # a request that parses but that sanity refuses, 50 times
        for _ in range(50):
            hostile.sendto(broken_sip.replace(b";;,;,,", b"").replace(b"Content-Length: 0",
                                                                       b"Content-Length: 99"),
                           ("127.0.0.1", port))
    # the front is still there and answers; then nothing more is on its way to the log
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        peer = RawPeer(port)
        call_id, tag = new_ids()
        assert peer.ask(peer.request("OPTIONS", f"sip:ivr@127.0.0.1:{port}", call_id=call_id,
                                     from_tag=tag)) is not None
        peer.close()
    time.sleep(0.5)
    added = [ln.decode("utf-8", "replace") for ln in log.read_bytes().splitlines()[before:]]
    # one line per source per second at most: the barrage takes well under a few seconds
    # on any machine that runs these tests, hence the generous bound (before: about 2,000 lines)
    assert 1 <= len(added) <= 12, "\n".join(added)
    assert all("127.0.0.2" in ln for ln in added), "\n".join(added)
    assert any("rejected: unparsable message from 127.0.0.2:" in ln for ln in added)


def test_allowed_networks_become_an_address_list_and_a_bad_one_is_refused(
        tmp_path: Path) -> None:
    from ivr.kamailio import KamailioConfig, KamailioConfigError, render

    files = render(KamailioConfig(run_dir=tmp_path,
                                  allowed_networks=("198.51.100.7/28", "2001:db8::/32")))
    assert files["address.list"].splitlines()[1:] == ["1 198.51.100.0 28 0",
                                                      "1 [2001:db8::] 32 0"]
    assert "#!define WITH_ACL" in files["kamailio.cfg"]
    assert "address.list" not in render(KamailioConfig(run_dir=tmp_path))
    with pytest.raises(KamailioConfigError, match="allowed_networks: 'trunk' is not a network"):
        KamailioConfig(allowed_networks=("trunk",))


def test_the_credentials_file_is_read_and_a_bad_line_is_named(tmp_path: Path) -> None:
    from ivr.front import FrontError, read_credentials

    good = tmp_path / "users"
    good.write_text("# trunks\ntrunk1:s3:cret\n\nagent7:pw\n")
    assert read_credentials(good) == (("trunk1", "s3:cret"), ("agent7", "pw"))
    bad = tmp_path / "bad"
    bad.write_text("trunk1:x\nnocolon\n")
    with pytest.raises(FrontError, match=f"{bad}:2: expected username:password"):
        read_credentials(bad)
    with pytest.raises(FrontError, match="cannot read it"):
        read_credentials(tmp_path / "missing")


@with_peers
def test_the_stack_counts_a_refused_call_in_its_store(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, workers=1, env={"IVR_FRONT_MAX_CALLS": "1"})
    try:
        held = sipp_call(stack.target, "front_caller.xml", tmp_path, source="127.0.0.1",
                         port=17360, hold_ms=4000)
        stack.wait_for('"call.answered"')
        finish(sipp_call(stack.target, "front_caller_refused.xml", tmp_path,
                         source="127.0.0.2", port=17361))
        finish(held)
        store = CallStore(stack.db)
        try:
            (row,) = blocked_rows(store, "global_limit")
        finally:
            store.close()
        assert (row.sip_code, row.source) == (503, "127.0.0.2")
    finally:
        assert stack.stop() == 0
