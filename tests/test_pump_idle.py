"""An idle worker's pump thread sleeps up to a second at a time.

A pool keeps idle workers ready (and a machine sized for hundreds of calls has a hundred of
them); each pump wake-up costs about 0.1 ms of CPU on a VM, so the pump must not turn ten
times a second when no call is up. Counted with the kernel's context switches, not timed.
"""

from __future__ import annotations

import time
from pathlib import Path

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


def test_an_idle_workers_pump_wakes_about_once_a_second(worker: WorkerProcess) -> None:
    time.sleep(1.5)  # start-up done
    before = pump_switches(worker.proc.pid)
    time.sleep(4.0)
    woke = pump_switches(worker.proc.pid) - before
    # 100 ms turns would be about 40 here; one-second turns about 4.
    assert woke <= 10, f"the idle pump woke {woke} times in 4 s"
