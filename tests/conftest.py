"""Shared fixtures: a real call worker (``ivr worker`` as a subprocess) on loopback."""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).parent / "flows"

_port_numbers = itertools.count(0)


def free_sip_port() -> int:
    """A SIP port distinct per worker/stack of a test session (tests run one at a time, in
    their own network namespace). Port plan, all below the ephemeral range (32768):
    SIP 5200-6000 (workers, Kamailio), 6000-7000 (pooled workers), RTP 10000-14000
    (standalone workers), 14000-15999 (pools), sipp 16000-17999 and 26000-28999,
    baresip 18000+ and 22000+, the stacks' agent API 8100-8900 (SIP port + 2900)."""
    return 5200 + 10 * (next(_port_numbers) % 80)


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[str]
    port: int
    var_dir: Path
    lines: list[str] = field(default_factory=list)
    _q: queue.Queue[str] = field(default_factory=queue.Queue)
    _reader: threading.Thread = field(default_factory=threading.Thread)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.var_dir / "ivr.sqlite3"

    def wait_for(self, text: str, timeout_s: float = 15.0) -> str:
        deadline = time.monotonic() + timeout_s
        for line in self.lines:
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if text in line:
                return line
        log = "".join(self.lines[-60:])
        raise AssertionError(f"worker never logged {text!r}; its log:\n{log}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(timeout=5)
        return rc


def start_worker(tmp_path: Path, flow: Path | None = None, env: dict[str, str] | None = None,
                 max_calls: int | None = None) -> WorkerProcess:
    port = free_sip_port()
    var_dir = tmp_path / "var"
    full_env = {
        **os.environ,
        "IVR_SIP_PORT": str(port),
        "IVR_SIP_BIND_ADDRESS": "127.0.0.1",
        "IVR_RTP_PORT_START": str(10000 + 40 * (((port - 5200) // 10) % 100)),
        "IVR_RTP_PORT_RANGE": "40",
        "IVR_PATHS_VAR_DIR": str(var_dir),
        "IVR_PATHS_PROMPTS_DIR": str(ROOT / "prompts"),
        "IVR_PATHS_FLOW": str(flow or FLOWS / "basic.yaml"),
        "IVR_LOG_FORMAT": "json",
        "IVR_LOG_LEVEL": "INFO",
        "IVR_WORKER_DRAIN_TIMEOUT_S": "5",
        **(env or {}),
    }
    if max_calls is not None:
        full_env["IVR_WORKER_MAX_CALLS"] = str(max_calls)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "worker"], cwd=ROOT, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wp = WorkerProcess(proc, port, var_dir)
    _read_lines(wp)
    wp.wait_for('"worker.ready"')
    return wp


@dataclass
class StackProcess(WorkerProcess):
    """``ivr run``: Kamailio on ``port``, the controller, the zygote and the workers."""

    worker_port_base: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def ivr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an ``ivr`` command against this stack (same settings)."""
        return subprocess.run([sys.executable, "-m", "ivr.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def worker_pids(self) -> dict[str, int]:
        """Live workers by name, from the controller's log (latest start wins)."""
        pids: dict[str, int] = {}
        for line in self.lines:
            if '"pool.worker_up"' in line:
                msg = json.loads(line)
                pids[msg["worker"]] = msg["pid"]
        return pids


def stack_processes(var_dir: Path) -> dict[int, str]:
    """Every live process of the stack on ``var_dir`` (pid -> command line): the controller,
    the zygote, the workers and Kamailio's processes, found by the var dir in their
    environment (all inherit the controller's) or command line."""
    needle = str(var_dir).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if not cmdline:
            continue  # a zombie
        if (b"IVR_PATHS_VAR_DIR=" + needle) in environ.split(b"\0") or needle in cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_no_stack_processes(var_dir: Path, timeout_s: float) -> None:
    """Fail unless every process of the stack on ``var_dir`` is gone within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = stack_processes(var_dir)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = stack_processes(var_dir)
    assert not left, f"processes of the stack still running after {timeout_s:g} s: {left}"


def stack_settings(tmp_path: Path, workers: int = 3, env: dict[str, str] | None = None,
                   flow: Path | None = None) -> tuple[int, int, dict[str, str]]:
    """(front SIP port, the workers' port base, the environment) of a test stack on
    ``tmp_path/var``."""
    port = free_sip_port()
    index = (port - 5200) // 10
    base = 6000 + 10 * index  # the workers' SIP ports: base + slot
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IVR_")},
        "IVR_SIP_PORT": str(port),
        "IVR_SIP_BIND_ADDRESS": "127.0.0.1",
        "IVR_HTTP_PORT": str(port + 2900),
        "IVR_POOL_WORKERS": str(workers),
        "IVR_POOL_MAX_WORKERS": str(workers + 2),
        "IVR_POOL_MIN_IDLE_WORKERS": "0",
        "IVR_POOL_WORKER_PORT_BASE": str(base),
        "IVR_POOL_RESTART_DELAY_S": "0.2",
        "IVR_RTP_PORT_START": str(14000 + 200 * (index % 10)),
        "IVR_FRONT_PROBE_INTERVAL_S": "1",
        "IVR_PATHS_VAR_DIR": str(tmp_path / "var"),
        "IVR_PATHS_PROMPTS_DIR": str(ROOT / "prompts"),
        "IVR_PATHS_FLOW": str(flow or ROOT / "ivr" / "flows" / "default.yaml"),
        "IVR_LOG_FORMAT": "json",
        "IVR_WORKER_DRAIN_TIMEOUT_S": "5",
        **(env or {}),
    }
    return port, base, full_env


def start_stack(tmp_path: Path, workers: int = 3, env: dict[str, str] | None = None,
                flow: Path | None = None, same_as: StackProcess | None = None) -> StackProcess:
    """Start ``ivr run`` on ``tmp_path/var``; ``same_as`` starts it again with the settings
    (ports, var dir) of an earlier one."""
    if same_as is not None:
        port, base, full_env = same_as.port, same_as.worker_port_base, same_as.env
    else:
        port, base, full_env = stack_settings(tmp_path, workers, env, flow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "run"], cwd=ROOT, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    sp = StackProcess(proc, port, Path(full_env["IVR_PATHS_VAR_DIR"]), worker_port_base=base,
                      env=full_env)
    _read_lines(sp)
    sp.wait_for('"controller.ready"', timeout_s=120 if same_as else 60)
    return sp


def _read_lines(wp: WorkerProcess) -> None:
    proc = wp.proc

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                wp.lines.append(line)
                wp._q.put(line)

    wp._reader = threading.Thread(target=pump, daemon=True)
    wp._reader.start()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    wp = start_worker(tmp_path)
    yield wp
    wp.stop()


@pytest.fixture
def short_worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker on the short test flow (tight timeouts, short prompts)."""
    wp = start_worker(tmp_path, flow=FLOWS / "short.yaml")
    yield wp
    wp.stop()


def ended_call(db: Path, timeout_s: float = 15.0
               ) -> tuple[sqlite3.Row, list[tuple[str, dict[str, Any]]]]:
    """The newest call in the store once it has ended, with its events (kind, data)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM calls ORDER BY arrived_at DESC LIMIT 1").fetchone()
        if row is not None and row["ended_at"] is not None:
            events = [(k, json.loads(d)) for k, d in con.execute(
                "SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id",
                (row["call_id"],))]
            con.close()
            return row, events
        con.close()
        time.sleep(0.1)
    raise AssertionError("no ended call in the store")


@pytest.fixture
def default_worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker on the shipped default flow."""
    wp = start_worker(tmp_path, flow=ROOT / "ivr" / "flows" / "default.yaml")
    yield wp
    wp.stop()


# ---------------------------------------------------------------- a run that always ends

_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After the summary, leave at once with pytest's own exit status. A non-daemon thread a
    test left running would keep the interpreter waiting for it at exit, and objects torn
    down at interpreter exit (a pjsua2 endpoint a test left alive) may wait for threads of
    their own: both were seen to hold a finished run for many minutes. A thread still running
    is named, with every thread's stack, so it can be found and fixed."""
    import faulthandler

    stray = [t for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    for t in stray:
        t.join(timeout=2)
    stray = [t for t in stray if t.is_alive()]
    if stray:
        names = ", ".join(t.name for t in stray)
        sys.stderr.write(f"\nconftest: {len(stray)} thread(s) still running after the tests "
                         f"({names}); their stacks follow, then the run exits\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status[-1] if _exit_status else 1)
