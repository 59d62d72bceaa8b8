"""Shared fixtures: a real call worker (``ivr worker`` as a subprocess) on loopback."""

from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).parent / "flows"

_port_numbers = itertools.count(0)


def free_sip_port() -> int:
    # Distinct per test and per xdist-free run; tests run in their own network namespace.
    return 5200 + 10 * next(_port_numbers)


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
        "IVR_RTP_PORT_START": str(30000 + 40 * (port - 5200)),
        "IVR_RTP_PORT_RANGE": "40",
        "IVR_PATHS_VAR_DIR": str(var_dir),
        "IVR_PATHS_PROMPTS_DIR": str(ROOT / "prompts"),
        "IVR_PATHS_FLOW": str(flow or ROOT / "ivr" / "flows" / "default.yaml"),
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

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                wp.lines.append(line)
                wp._q.put(line)

    wp._reader = threading.Thread(target=pump, daemon=True)
    wp._reader.start()
    wp.wait_for('"worker.ready"')
    return wp


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
