"""An idle worker's pump thread sleeps up to a second at a time.

A pool keeps idle workers ready (and a machine sized for hundreds of calls has a hundred of
them); each pump wake-up costs about 0.1 ms of CPU on a VM, so the pump must not turn ten
times a second when no call is up. Counted with the kernel's context switches, not timed.
"""

from __future__ import annotations

import time
from pathlib import Path

from media.phone import _IDLE_PUMP_TIMEOUT_MS
from tests.conftest import WorkerProcess


def pump_switches(pid: int) -> int:
    """Voluntary context switches of the worker's Python-started threads (the pump, and any
    idle executor thread), i.e. how often they went to sleep."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) == pid or (task / "comm").read_text().strip() != "python":
            continue
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_an_idle_workers_pump_turns_at_its_idle_timeout_not_its_call_timeout(
        worker: WorkerProcess) -> None:
    # A count bounded by the configuration, over whatever window the sleep really took (a
    # busy machine stretches the window, and the bound with it).
    time.sleep(1.5)  # let start-up settle
    before = pump_switches(worker.proc.pid)
    started = time.monotonic()
    time.sleep(4.0)
    window_s = time.monotonic() - started
    woke = pump_switches(worker.proc.pid) - before
    idle_turns = window_s / (_IDLE_PUMP_TIMEOUT_MS / 1000)
    in_call_turns = window_s / 0.1  # media.pump_timeout_ms's default, 100 ms
    bound = 2 * idle_turns + 3  # each turn may sleep twice (the pump and an executor thread)
    assert bound < in_call_turns / 2  # the test could tell the two apart
    assert woke <= bound, f"the idle pump woke {woke} times in {window_s:.1f} s"
