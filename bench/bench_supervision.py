"""How fast the stack recovers from each kill (figures; tests/test_supervision.py proves it).

    scripts/in-netns .venv/bin/python bench/bench_supervision.py [--drain-s 3]

One stack (2 workers) on a fresh var dir, on loopback in a network namespace. It prints:
Kamailio SIGKILL -> ``front.restarted`` and zygote SIGKILL -> ``zygote.restarted`` (from
the log lines' own timestamps); controller SIGKILL with two calls up -> the last process of
the stack gone (bounded by ``--drain-s``: the calls drain first, their BYEs via Kamailio);
and how long a second ``ivr run`` on the same var dir takes to be refused.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import sipp  # noqa: E402
from tests.conftest import StackProcess, stack_processes, start_stack  # noqa: E402
from tests.test_pool import finish, hold_calls, wait_rows  # noqa: E402


def _ts(line: str) -> float:
    return datetime.fromisoformat(json.loads(line)["ts"].replace("Z", "+00:00")).timestamp()


def _after(stack: StackProcess, event: str, since: int) -> str:
    stack.wait_for(event, timeout_s=60)
    return next(ln for ln in stack.lines[since:] if event in ln)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drain-s", type=float, default=3.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-supervision-"))
    stack = start_stack(work, workers=2, env={"IVR_WORKER_DRAIN_TIMEOUT_S": str(args.drain_s)})
    run = stack.var_dir / "run"
    try:
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "ivr.cli", "run"], cwd=ROOT,
                                env=stack.env, capture_output=True, text=True, timeout=60)
        print(f"second ivr run: exit {second.returncode} after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms: {second.stderr.strip()[:100]}")

        since = len(stack.lines)
        killed_at = time.time()
        os.kill(int((run / "kamailio" / "kamailio.pid").read_text()), signal.SIGKILL)
        line = _after(stack, '"front.restarted"', since)
        print(f"Kamailio SIGKILL -> front.restarted: {(_ts(line) - killed_at) * 1000:.0f} ms")

        since = len(stack.lines)
        killed_at = time.time()
        os.kill(int((run / "zygote.pid").read_text()), signal.SIGKILL)
        line = _after(stack, '"zygote.restarted"', since)
        print(f"zygote SIGKILL -> zygote.restarted: {(_ts(line) - killed_at) * 1000:.0f} ms "
              "(includes pool.restart_delay_s = 0.2 s)")

        held = hold_calls(stack, work, "held", 2, sipp.Caller("held").ivr_hangs_up(40000),
                          17900)
        wait_rows(stack.db, 2, ended=False)
        killed = time.monotonic()
        os.kill(stack.proc.pid, signal.SIGKILL)
        rc, _ = finish(held, 60)
        byes = time.monotonic() - killed
        while stack_processes(stack.var_dir):
            time.sleep(0.05)
        gone = time.monotonic() - killed
        print(f"controller SIGKILL, 2 calls up, drain {args.drain_s:g} s: callers got their "
              f"BYE after {byes:.1f} s (sipp exit {rc}); every process gone after {gone:.1f} s")
    finally:
        stack.stop()
        for pid in stack_processes(stack.var_dir):
            os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
