"""The SIP front (ivr/kamailio.py): a real Kamailio between sipp callers and sipp workers.

The fake workers are sipp UAS scenarios in ``tests/sipp/front_worker*.xml``: each answers
the front's OPTIONS probes with 200 and treats an INVITE as a worker would (answer, refuse
486/503, say nothing, or answer and hang up). Everything runs on 127.0.0.1; run the file in
a loopback-only network namespace::

    unshare -n sh -c 'ip link set lo up; cd /work/main; \
        .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_kamailio.py'
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivr.kamailio import (
    Destination,
    DestinationStatus,
    KamailioConfig,
    KamailioConfigError,
    KamailioProcess,
    KamailioStartError,
    kamailio_available,
    parse_dispatcher_list,
    render,
)

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
HAVE_KAMAILIO = kamailio_available()

needs_peers = [
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) not installed"),
    pytest.mark.skipif(not HAVE_KAMAILIO, reason="kamailio not installed"),
]

_blocks = itertools.count(0)


def port_block() -> int:
    """20 SIP ports per test (front, workers, callers), distinct within one run."""
    return 5600 + 20 * next(_blocks)


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.1) -> float:
    """Poll ``pred`` until true; returns the seconds it took; fails after ``timeout_s``.
    Give a generous ``timeout_s`` (a multiple of what the configuration implies): it only
    stops a test that would otherwise hang, it does not measure anything."""
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)
    return time.monotonic() - start


# ---- fake workers and callers (sipp)


@dataclass
class FakeWorker:
    """A sipp UAS on 127.0.0.1:port playing one ``front_worker*.xml`` scenario."""

    port: int
    scenario: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    @property
    def message_log(self) -> Path:
        return self.workdir / f"worker{self.port}_messages.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / f"worker{self.port}_errors.log"

    def start(self) -> FakeWorker:
        assert SIPP is not None and self.proc is None
        self.proc = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / self.scenario), "-i", "127.0.0.1",
             "-p", str(self.port), "-mp", str(20000 + 10 * (self.port - 5600)),
             "-nostdin", "-trace_msg", "-message_file", str(self.message_log),
             "-trace_err", "-error_file", str(self.error_log)],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = self.proc
        wait_until(lambda: _udp_port_bound(self.port) or proc.poll() is not None, 5,
                   f"sipp worker on {self.port}")
        if proc.poll() is not None:
            self.proc = None
            log = self.error_log
            detail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise AssertionError(f"sipp worker on {self.port} exited: {detail}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def _messages(self, direction: str) -> list[str]:
        if not self.message_log.exists():
            return []
        blocks = self.message_log.read_text(errors="replace").split("\n-----")
        return [b.split("\n\n", 1)[-1].lstrip() for b in blocks if f"message {direction}" in b]

    def invites(self) -> set[str]:
        """Call-IDs of the INVITEs this worker received (retransmissions counted once)."""
        return {_header(m, "Call-ID") for m in self._messages("received")
                if m.startswith("INVITE ")}

    def received(self, start: str) -> list[str]:
        return [m for m in self._messages("received") if m.startswith(start)]


def _header(message: str, name: str) -> str:
    for line in message.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def _udp_port_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Callers:
    """sipp UAC runs against the front, each on its own local and media ports."""

    target: str
    workdir: Path
    base_port: int
    _n: Iterator[int] = field(default_factory=lambda: itertools.count(0))
    _running: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, scenario: str, *, calls: int = 1, concurrent: int = 1, hold_ms: int = 0,
              transport: str = "u1", timeout_s: int = 20) -> tuple[subprocess.Popen[str], Path]:
        assert SIPP is not None
        n = next(self._n)
        errors = self.workdir / f"caller{n}_errors.log"
        cmd = [
            SIPP, self.target, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
            "-p", str(self.base_port + n), "-mp", str(24000 + 10 * (self.base_port - 5600 + n)),
            "-m", str(calls), "-l", str(concurrent), "-r", "20", "-d", str(hold_ms),
            "-t", transport, "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err", "-error_file", str(errors),
        ]
        proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._running.append(proc)
        return proc, errors

    def finish(self, started: tuple[subprocess.Popen[str], Path], timeout_s: int = 30) -> None:
        """Wait for a started run; fail with sipp's own error log unless every call passed."""
        proc, errors = started
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"sipp caller still running after {timeout_s} s") from None
        finally:
            self._running.remove(proc)
        log = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
        assert proc.returncode == 0, f"sipp caller exit {proc.returncode}: {err[-1500:]}\n{log}"

    def stop_all(self) -> None:
        """Kill the runs a failed test left behind (each by its own PID)."""
        for proc in self._running:
            proc.kill()
            proc.communicate()
        self._running.clear()

    def run(self, scenario: str, *, calls: int = 1, concurrent: int = 1, hold_ms: int = 0,
            transport: str = "u1", timeout_s: int = 20) -> None:
        self.finish(self.start(scenario, calls=calls, concurrent=concurrent, hold_ms=hold_ms,
                               transport=transport, timeout_s=timeout_s))


@dataclass
class Rig:
    """One front, its fake workers, and callers aimed at it."""

    front: KamailioProcess
    workers: list[FakeWorker]
    callers: Callers

    def loads(self) -> dict[str, int]:
        return {d.uri: d.load for d in self.front.dispatcher_list()}

    def states(self) -> dict[str, str]:
        return {d.uri: d.state for d in self.front.dispatcher_list()}

    def wait_loads(self, expected: dict[str, int], timeout_s: float = 20) -> None:
        try:
            wait_until(lambda: self.loads() == expected, timeout_s, f"loads {expected}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; they are {self.loads()}") from None


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    started: list[Rig] = []
    leftovers: list[FakeWorker] = []

    def make(scenarios: list[str], max_load: int = 2, **settings: object) -> Rig:
        base = port_block()
        fakes = [FakeWorker(base + 1 + i, scenario, tmp_path)
                 for i, scenario in enumerate(scenarios)]
        leftovers.extend(fakes)
        for w in fakes:
            w.start()
        cfg = KamailioConfig(
            port=base, run_dir=tmp_path / f"front{base}",
            destinations=[Destination(w.uri, max_load) for w in fakes],
            **settings,  # type: ignore[arg-type]
        )
        front = KamailioProcess(cfg)
        rig = Rig(front, fakes, Callers(f"127.0.0.1:{base}", tmp_path, base + 10))
        started.append(rig)
        front.start()
        return rig

    yield make
    for rig in started:
        rig.callers.stop_all()
        rig.front.stop()
    for w in leftovers:
        w.stop()


# the fake workers, one sipp scenario each
OK = "front_worker.xml"  # 200, then waits for the caller's BYE
BUSY = "front_worker_busy.xml"  # 486, as a worker holding its 4 calls
DRAINING = "front_worker_draining.xml"  # 503, as a worker shutting down
SILENT = "front_worker_silent.xml"  # answers probes but never an INVITE
HANGS_UP = "front_worker_hangs_up.xml"  # 200, then its own BYE after 0.5 s


# ---- the config itself


def test_render_fills_every_placeholder_and_lists_each_worker(tmp_path: Path) -> None:
    cfg = KamailioConfig(
        listen_address="127.0.0.1", port=5070, transports=("udp",), run_dir=tmp_path,
        destinations=[Destination("sip:127.0.0.1:5101", 4),
                      Destination("sip:127.0.0.1:5102;transport=tcp", 2, set_id=2)],
        probe_interval_s=3, probe_threshold=4, pike_exempt=("10.0.0.0/8",),
    )
    files = render(cfg)
    text = files["kamailio.cfg"]
    assert "@@" not in text
    assert "listen=udp:127.0.0.1:5070" in text and "tcp:" not in text.split("####### Mod")[0]
    assert "disable_tcp=yes" in text
    assert 'modparam("dispatcher", "ds_ping_interval", 3)' in text
    assert 'modparam("dispatcher", "ds_probing_threshold", 4)' in text
    assert 'is_in_subnet("$si", "10.0.0.0/8")' in text
    assert '$xavp(_dsdst_[1]=>uri)' in text  # Kamailio's own $ syntax survives the template
    assert f"unix:{tmp_path.resolve()}/kamailio.ctl" in text
    assert files["dispatcher.list"].splitlines()[1:] == [
        "1 sip:127.0.0.1:5101 8 0 duid=127.0.0.1_5101;maxload=4",
        "2 sip:127.0.0.1:5102;transport=tcp 8 0 duid=127.0.0.1_5102_transport_tcp;maxload=2",
    ]


@pytest.mark.parametrize(("settings", "message"), [
    ({"listen_address": "localhost"}, "listen_address: 'localhost' is not an IP address"),
    ({"transports": ("udp", "tls")}, "transports"),
    ({"destinations": [Destination("sip:127.0.0.1:5101", 4)] * 2}, "listed twice"),
    ({"pike_exempt": ("127.0.0.300/8",)}, "pike_exempt"),
    ({"children": 0}, "children: must be at least 1"),
    ({"run_dir": Path("/tmp/" + "d" * 120)}, "too long for a unix socket path"),
])
def test_unusable_settings_are_refused_at_the_door(settings: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(KamailioConfigError, match="invalid Kamailio settings") as err:
        KamailioConfig(**settings)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_a_destination_must_be_a_sip_uri() -> None:
    with pytest.raises(KamailioConfigError, match="not a SIP URI"):
        Destination("127.0.0.1:5101", 4)


def test_parse_dispatcher_list_reads_state_and_load() -> None:
    text = """{
	NRSETS: 1
	RECORDS: {
		SET: {
			ID: 3
			TARGETS: {
				DEST: {
					URI: sip:127.0.0.1:5102
					FLAGS: IP
					PRIORITY: 0
					ATTRS: {
						BODY: duid=127.0.0.1_5102;maxload=2
						DUID: 127.0.0.1_5102
						MAXLOAD: 2
					}
					RUNTIME: {
						DLGLOAD: 1
					}
				}
				DEST: {
					URI: sip:127.0.0.1:5101
					FLAGS: DX
					PRIORITY: 0
				}
			}
		}
	}
}
"""
    assert parse_dispatcher_list(text) == [
        DestinationStatus(3, "sip:127.0.0.1:5102", "inactive", True, 1, 2, "127.0.0.1_5102",
                          "IP"),
        DestinationStatus(3, "sip:127.0.0.1:5101", "disabled", False, 0, 0, "", "DX"),
    ]


@pytest.mark.skipif(not HAVE_KAMAILIO, reason="kamailio not installed")
@pytest.mark.parametrize("transports", [("udp", "tcp"), ("udp",), ("tcp",)],
                         ids=["udp+tcp", "udp", "tcp"])
def test_kamailio_accepts_the_rendered_config(tmp_path: Path,
                                              transports: tuple[str, ...]) -> None:
    cfg = KamailioConfig(run_dir=tmp_path, transports=transports,  # type: ignore[arg-type]
                         destinations=[Destination("sip:127.0.0.1:5101", 4)])
    KamailioProcess(cfg).check_config()


@pytest.mark.skipif(not HAVE_KAMAILIO, reason="kamailio not installed")
def test_a_config_kamailio_refuses_is_reported_with_its_own_message(tmp_path: Path) -> None:
    cfg = KamailioConfig(run_dir=tmp_path, module_dir=tmp_path / "no-modules")
    with pytest.raises(KamailioConfigError, match="kamailio refused") as err:
        KamailioProcess(cfg).start()
    assert "could not find module <kex>" in str(err.value)


# ---- the running front

def with_peers(fn: Callable[..., None]) -> Callable[..., None]:
    """Marks an end-to-end test: real Kamailio, real sipp."""
    for mark in needs_peers:
        fn = mark(fn)
    return fn


@with_peers
def test_calls_are_spread_by_load_and_a_full_pool_refuses_at_once(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([OK, OK], max_load=2)
    a, b = rig.workers
    held = rig.callers.start("front_caller.xml", calls=4, concurrent=4, hold_ms=4000)
    rig.wait_loads({a.uri: 2, b.uri: 2})
    # every worker is at its maxload: the fifth caller hears busy (486) at once, not a hang
    rig.callers.run("front_caller_busy.xml", timeout_s=10)
    rig.callers.finish(held)
    rig.wait_loads({a.uri: 0, b.uri: 0})  # the callers' BYEs released the load
    assert len(a.invites()) == 2 and len(b.invites()) == 2
    assert len(a.received("BYE ")) == 2 and len(b.received("BYE ")) == 2


@with_peers
@pytest.mark.parametrize("refusing", [BUSY, DRAINING], ids=["486-full", "503-draining"])
def test_a_worker_that_refuses_hands_the_call_to_another(
        rig_factory: Callable[..., Rig], refusing: str) -> None:
    rig = rig_factory([refusing, OK], max_load=2)
    refuser, ok = rig.workers
    # two held calls: whichever worker the first goes to, one of them is offered to the
    # refusing worker (the least loaded) and must end up on the other
    rig.callers.run("front_caller.xml", calls=2, concurrent=2, hold_ms=1000)
    assert refuser.invites(), "the refusing worker was never tried"
    assert len(ok.invites()) == 2
    rig.wait_loads({refuser.uri: 0, ok.uri: 0})


@with_peers
def test_when_every_worker_refuses_the_caller_hears_busy(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([BUSY, DRAINING])
    rig.callers.run("front_caller_busy.xml", timeout_s=10)
    assert all(len(w.invites()) == 1 for w in rig.workers)
    rig.wait_loads({w.uri: 0 for w in rig.workers})
    assert "every worker refused" in rig.front.log_tail()


@with_peers
def test_a_silent_worker_is_given_up_after_the_no_reply_timer(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([SILENT, OK], no_reply_timeout_ms=1000)
    silent, ok = rig.workers
    rig.callers.run("front_caller.xml", calls=2, concurrent=2, hold_ms=500)
    assert silent.invites(), "the silent worker was never tried"
    assert len(ok.invites()) == 2
    rig.wait_loads({silent.uri: 0, ok.uri: 0})


@with_peers
def test_a_caller_who_cancels_during_setup_frees_the_load(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([SILENT], no_reply_timeout_ms=3000)
    (silent,) = rig.workers
    rig.callers.run("front_caller_cancels.xml", timeout_s=10)
    assert len(silent.invites()) == 1
    rig.wait_loads({silent.uri: 0})


@with_peers
def test_a_worker_that_stops_answering_probes_leaves_the_set_and_comes_back(
        rig_factory: Callable[..., Rig]) -> None:
    interval_s, threshold, no_reply_ms = 1, 2, 1000
    rig = rig_factory([OK, OK], probe_interval_s=interval_s, probe_threshold=threshold,
                      no_reply_timeout_ms=no_reply_ms)
    a, b = rig.workers
    a.stop()
    # the probe after the last answered one, and threshold-1 more, each time out; waited for
    # five times as long as that takes, so a busy machine does not fail it
    probes_s = interval_s * threshold + no_reply_ms / 1000 + interval_s
    wait_until(lambda: rig.states()[a.uri] == "inactive", 5 * probes_s + 10, f"{a.uri} inactive")
    assert rig.states()[b.uri] == "active"
    assert "destination down " + a.uri in rig.front.log_tail()
    rig.callers.run("front_caller.xml", calls=2, concurrent=2, hold_ms=300)
    assert len(b.invites()) == 2

    a.start()  # answers OPTIONS again on the same port
    wait_until(lambda: rig.states()[a.uri] == "active", 5 * interval_s * 2 + 10,
               f"{a.uri} active")
    rig.callers.run("front_caller.xml", calls=2, concurrent=2, hold_ms=500)
    assert len(a.invites()) == 1 and len(b.invites()) == 3


@with_peers
def test_the_worker_hanging_up_goes_through_the_front_and_frees_the_load(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([HANGS_UP])
    (worker,) = rig.workers
    rig.callers.run("front_caller_hung_up.xml", timeout_s=10)
    byes_answered = [m for m in worker.received("SIP/2.0 200") if "BYE" in _header(m, "CSeq")]
    assert len(byes_answered) == 1
    rig.wait_loads({worker.uri: 0})


@with_peers
def test_a_tcp_caller_reaches_a_udp_worker_and_its_bye_follows_the_route(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([OK])
    (worker,) = rig.workers
    rig.callers.run("front_caller.xml", transport="t1", hold_ms=300)
    invite = worker.received("INVITE ")[0]
    # double record-routing: the front's UDP side faces the worker, its TCP side the caller
    port = rig.front.config.port
    # (did: the dialog module's cookie, which in-dialog requests must bring back)
    rrs = [re.sub(r";did=[^;>]+", "", ln) for ln in invite.splitlines()
           if ln.startswith("Record-Route:")]
    assert rrs == [
        f"Record-Route: <sip:127.0.0.1:{port};r2=on;lr>",
        f"Record-Route: <sip:127.0.0.1:{port};transport=tcp;r2=on;lr>",
    ]
    assert len(worker.received("BYE ")) == 1
    rig.wait_loads({worker.uri: 0})


# ---- raw SIP at the front


def _request(port: int, local: int, method: str = "OPTIONS", *, drop: tuple[str, ...] = (),
             extra: tuple[str, ...] = (), content_length: int | None = None,
             body: str = "") -> bytes:
    tag = uuid.uuid4().hex[:12]
    uri = f"sip:ivr@127.0.0.1:{port}"
    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{tag}",
        "From": f"<sip:probe@127.0.0.1:{local}>;tag={tag}",
        "To": f"<{uri}>",
        "Call-ID": f"{tag}@127.0.0.1",
        "CSeq": f"1 {method}",
        "Max-Forwards": "70",
    }
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k not in drop]
    lines += list(extra)
    length = len(body) if content_length is None else content_length
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _ask(sock: socket.socket, port: int, data: bytes, wait_s: float = 1.0) -> str | None:
    """Send one datagram to the front; the status line of its reply, or None if none came
    back within ``wait_s`` (requests arriving meanwhile, like probes, are skipped)."""
    sock.sendto(data, ("127.0.0.1", port))
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            line = sock.recv(65535).split(b"\r\n", 1)[0].decode(errors="replace")
        except TimeoutError:
            break
        if line.startswith("SIP/2.0 "):
            return line
    return None


@with_peers
def test_malformed_requests_are_rejected_and_the_front_keeps_serving(
        rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory([OK])
    port = rig.front.config.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
        # a reply needs a CSeq to echo: without one the request is dropped
        assert _ask(s, port, _request(port, local, "INVITE", drop=("CSeq",)), 0.5) is None
        assert _ask(s, port, _request(port, local, content_length=300)) == \
            "SIP/2.0 400 Content-Length mis-match"
        assert _ask(s, port, _request(port, local, "INVITE", body="v=0\r\n",
                                      content_length=2)) == "SIP/2.0 400 Content-Length mis-match"
        assert _ask(s, port, _request(port, local, drop=("From",)), 0.5) is None
        assert _ask(s, port, b"\x00\xffnot SIP at all\r\n\r\n", 0.5) is None
        assert _ask(s, port, _request(port, local, extra=("Max-Forwards: 0",),
                                      drop=("Max-Forwards",))) == "SIP/2.0 483 Too Many Hops"
        # the front answers OPTIONS itself and only dispatches INVITE
        assert _ask(s, port, _request(port, local)) == "SIP/2.0 200 OK"
        assert _ask(s, port, _request(port, local, "MESSAGE")) == \
            "SIP/2.0 405 Method Not Allowed"
        assert _ask(s, port, _request(port, local, "BYE", drop=("To",), extra=(
            f"To: <sip:ivr@127.0.0.1:{port}>;tag=unknown",))) == "SIP/2.0 404 Not Here"
        # an INVITE from a worker is not dispatched back into the pool
        rig.front.add_destination(Destination(f"sip:127.0.0.1:{local}", 1))
        assert _ask(s, port, _request(port, local, "INVITE")) == \
            "SIP/2.0 403 No Outbound Routing"
    assert rig.front.running
    rig.callers.run("front_caller.xml", hold_ms=200)
    assert len(rig.workers[0].invites()) == 1


@with_peers
def test_pike_drops_a_flood_from_a_source_that_is_not_exempt(
        rig_factory: Callable[..., Rig]) -> None:
    # only 127.0.0.1 is trusted here; 127.0.0.2 (also loopback) plays a flooding stranger
    rig = rig_factory([OK], pike_exempt=("127.0.0.1/32",), pike_max_requests=5,
                      pike_sampling_s=2)
    port = rig.front.config.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        local = stranger.getsockname()[1]
        for _ in range(60):
            stranger.sendto(_request(port, local), ("127.0.0.1", port))
        answered = 0
        stranger.settimeout(1.0)
        with_replies = True
        while with_replies:
            try:
                stranger.recv(65535)
                answered += 1
            except TimeoutError:
                with_replies = False
    assert 1 <= answered < 60
    assert "BLOCKing ip 127.0.0.2" in rig.front.log_tail()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trusted:
        trusted.bind(("127.0.0.1", 0))
        ok = [_ask(trusted, port, _request(port, trusted.getsockname()[1]))
              for _ in range(30)]
    assert ok == ["SIP/2.0 200 OK"] * 30


# ---- control: kamcmd over the ctl socket


@with_peers
def test_workers_can_be_disabled_added_and_removed_at_run_time(
        rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    rig = rig_factory([OK, OK], max_load=2)
    a, b = rig.workers
    front = rig.front

    front.set_state(a.uri, "disabled")  # draining: no new calls, no probes
    assert rig.states()[a.uri] == "disabled"
    held = rig.callers.start("front_caller.xml", calls=2, concurrent=2, hold_ms=3000)
    rig.wait_loads({a.uri: 0, b.uri: 2})

    # a third worker joins while the calls are up: the loads already counted stay
    c = FakeWorker(b.port + 1, "front_worker.xml", tmp_path).start()
    try:
        front.add_destination(Destination(c.uri, 2))
        assert rig.loads() == {a.uri: 0, b.uri: 2, c.uri: 0}
        assert "duid=127.0.0.1_" + str(c.port) in (front.run_dir / "dispatcher.list").read_text()
        rig.callers.run("front_caller.xml", hold_ms=200)  # b is full, a disabled: c takes it
        assert len(c.invites()) == 1

        front.remove_destination(c.uri)
        assert c.uri not in rig.loads() and rig.loads()[b.uri] == 2
        rig.callers.finish(held)
        rig.wait_loads({a.uri: 0, b.uri: 0})
    finally:
        c.stop()

    front.set_state(a.uri, "active")
    assert rig.states()[a.uri] == "active"
    # "inactive" is only until the next answered probe
    front.set_state(b.uri, "inactive")
    assert rig.states()[b.uri] == "inactive"
    wait_until(lambda: rig.states()[b.uri] == "active",
               5 * front.config.probe_interval_s * 2 + 10, "probe re-activates b")

    front.reload_dispatcher([Destination(b.uri, 3)])
    assert [(d.uri, d.max_load) for d in front.dispatcher_list()] == [(b.uri, 3)]


@with_peers
def test_start_fails_clearly_when_the_sip_port_is_taken(tmp_path: Path) -> None:
    port = port_block()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        front = KamailioProcess(KamailioConfig(port=port, run_dir=tmp_path / "front"))
        with pytest.raises(KamailioStartError, match="exited") as err:
            front.start(timeout_s=10)
    assert "bind" in str(err.value).lower() or "address already in use" in str(err.value)
    assert not front.running and front.pid is None


def _process_group(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


@with_peers
def test_stop_ends_kamailio_and_all_its_children(tmp_path: Path) -> None:
    cfg = KamailioConfig(port=port_block(), run_dir=tmp_path / "front", children=3)
    with KamailioProcess(cfg) as front:
        pid = front.pid
        assert pid is not None and len(_process_group(pid)) > 3  # main, receivers, timers...
        assert front.dispatcher_list() == []  # no workers yet: the front still starts
    assert not front.running
    assert _process_group(pid) == []
    assert not front.ctl_socket.exists()
