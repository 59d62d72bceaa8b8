"""CPU of an idle pool grown by a burst, before and after its idle workers are retired.

    scripts/in-netns .venv/bin/python bench/bench_idle_pool.py --calls 16 --window-s 15

It starts ``ivr run`` (Kamailio, controller, zygote) with ``pool.workers`` 2, one call per
worker (so each call grows the pool by one) and ``pool.idle_retire_s`` long enough to measure
first; places ``--calls`` overlapping sipp calls one after the other (all through Kamailio,
on loopback), lets them end, then measures the stack's CPU (every thread of every process
under the controller, from ``/proc/PID/task/TID/schedstat``) over ``--window-s`` while the
grown pool sits idle, waits until the idle workers are retired, and measures again. Run it
on demand, never from pytest; a busy machine (other jobs) disturbs the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import sipp  # noqa: E402
from tests.conftest import StackProcess, start_stack  # noqa: E402
from tests.test_pool import finish, hold_calls, wait_rows  # noqa: E402


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in out:
                out.add(child)
                todo.append(child)
    return out


def cpu_ns(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue
    return total


def measure(stack: StackProcess, window_s: float) -> tuple[float, int]:
    """(% of one core, processes) of the whole stack over the window."""
    pids = descendants(stack.proc.pid)
    a, t0 = cpu_ns(pids), time.monotonic()
    time.sleep(window_s)
    b, t1 = cpu_ns(pids), time.monotonic()
    return 100 * (b - a) / 1e9 / (t1 - t0), len(pids)


def count(stack: StackProcess, event: str) -> int:
    return sum(f'"{event}"' in line for line in stack.lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--window-s", type=float, default=15.0)
    args = ap.parse_args()
    retire_s = args.window_s + 20
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack = start_stack(work, workers=2, env={
            "IVR_WORKER_MAX_CALLS": "1", "IVR_POOL_MIN_IDLE_WORKERS": "1",
            "IVR_POOL_MAX_WORKERS": str(args.calls + 4),
            "IVR_POOL_IDLE_RETIRE_S": str(retire_s)})
        try:
            held = []
            for i in range(args.calls):
                held.append(hold_calls(stack, work, f"c{i}", 1,
                                       sipp.Caller(f"c{i}").pause(10000).caller_hangs_up(),
                                       16000 + 10 * i))
                wait_rows(stack.db, i + 1, ended=False)
            for proc in held:
                finish(proc)
            wait_rows(stack.db, args.calls)
            grown = count(stack, "pool.worker_up")
            before, procs_before = measure(stack, args.window_s)
            deadline = time.monotonic() + retire_s + 30
            while count(stack, "pool.worker_retired") < grown - 2:
                if time.monotonic() > deadline:
                    print("the pool never shrank", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            time.sleep(3)  # let the last retired worker exit
            after, procs_after = measure(stack, args.window_s)
        finally:
            stack.stop()
    print(f"idle pool grown by {args.calls} calls: {grown} workers, {procs_before} processes,"
          f" {before:.2f} % of a core")
    print(f"after retirement (pool.workers 2): {grown - count(stack, 'pool.worker_retired')}"
          f" workers, {procs_after} processes, {after:.2f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
