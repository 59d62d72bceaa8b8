"""``softphone --headless`` as a subprocess for end-to-end tests: commands on its stdin, its
state (JSON lines) read from its stdout, waited for by predicate."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class HeadlessSoftphone:
    proc: subprocess.Popen[str]
    states: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _q: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    log_file: Any = None

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, what: str, check: Callable[[dict[str, Any]], bool],
             timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        if self.states and check(self.states[-1]):
            return self.states[-1]
        while time.monotonic() < deadline:
            try:
                got = self._q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "link" in got and check(got):
                return got
        raise AssertionError(f"softphone: {what}: not within {timeout_s:g} s; last state "
                             f"{self.state}; errors {self.errors}; log tail "
                             f"{self.lines[-15:]}")

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, OSError):
                pass
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            for f in (self.proc.stdin, self.proc.stdout, self.log_file):
                if f is not None:
                    f.close()


def start_softphone(api_url: str, sip_proxy: str, agent_id: str, password: str,
                    *args: str, log_path: Path | None = None) -> HeadlessSoftphone:
    env = {**os.environ, "SOFTPHONE_PASSWORD": password}
    stderr = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "softphone.app", "--headless", "--log-level", "INFO",
         "--server", api_url, "--sip", sip_proxy, "--agent", agent_id, *args],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        text=True)
    phone = HeadlessSoftphone(proc, log_file=stderr if log_path else None)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            phone.lines.append(line)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "error" in msg:
                phone.errors.append(msg["error"])
            elif "link" in msg:
                phone.states.append(msg)
            phone._q.put(msg)

    threading.Thread(target=pump, daemon=True).start()
    return phone
