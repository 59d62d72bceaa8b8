"""Real-time scheduling for PJMEDIA's media clock thread.

Each worker's conference bridge is driven by one PJMEDIA clock thread (named ``clock``) that
wakes every 20 ms, mixes, encodes and sends RTP. With a hundred workers on two cores, a clock
thread that the kernel runs a few milliseconds late sends its packets late: callers hear the
gap. Asterisk (``-p``) and FreeSWITCH (``-rp``) run their media at a real-time priority for the
same reason. The clock threads need little CPU (a few percent of a core per hundred calls), so
a modest SCHED_RR priority costs the rest of the machine nothing but the wait.

Needs CAP_SYS_NICE or an RLIMIT_RTPRIO at least the priority (systemd ``LimitRTPRIO=``,
``docker run --cap-add SYS_NICE``). Without it the first attempt logs one warning and the
clock stays at normal priority.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("media.rtsched")

CLOCK_THREAD_NAME = "clock"


class ClockPriority:
    """Puts this process's PJMEDIA clock thread at SCHED_RR ``priority`` (0: leave it).

    PJSUA stops the clock when no call is up and starts a new thread for the next call, so
    :meth:`expect` is called whenever media is connected and :meth:`poll` on every turn of the
    pump: PJLIB names a thread from inside it, once it runs, so right after the connection
    that starts the clock the new thread may still carry its parent's name. Polling costs
    nothing while no clock is expected, and one ``stat`` while the raised thread is alive.
    """

    #: How long after a media connection a clock thread that has not shown up is looked for.
    EXPECT_S = 3.0

    def __init__(self, priority: int, task_dir: str = "/proc/self/task") -> None:
        if not 0 <= priority <= 99:
            raise ValueError(f"real-time priority {priority} is outside 0..99")
        self.priority = priority
        self.task_dir = task_dir
        self.raised_tid: int | None = None
        self.refused: str | None = None  # why the kernel said no, once it has
        self._expect_until = 0.0  # monotonic deadline while a clock is looked for

    @property
    def pending(self) -> bool:
        """A clock thread is expected and not yet raised."""
        return self._expect_until > 0.0

    def expect(self) -> None:
        """Media was connected: the clock runs now or starts in a moment; raise it."""
        if not self.enabled:
            return
        if self.apply() is None and self.enabled:
            self._expect_until = time.monotonic() + self.EXPECT_S

    def poll(self) -> None:
        """Look again for an expected clock thread (called on every turn of the pump)."""
        if not self._expect_until:
            return
        if self.apply() is not None or not self.enabled or time.monotonic() > self._expect_until:
            self._expect_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.priority > 0 and self.refused is None

    def apply(self) -> int | None:
        """Raise the clock thread if it is new; returns its thread id, or None."""
        if not self.enabled:
            return None
        if self.raised_tid is not None and os.path.exists(f"{self.task_dir}/{self.raised_tid}"):
            return self.raised_tid
        self.raised_tid = None
        tid = self._find_clock()
        if tid is None:
            return None
        try:
            os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(self.priority))
        except PermissionError as exc:
            self.refused = str(exc)
            log.warning(
                "media clock left at normal priority: SCHED_RR %d refused (%s); give the "
                "service CAP_SYS_NICE or LimitRTPRIO=%d, or set media.realtime_priority: 0",
                self.priority, exc.strerror, self.priority)
            return None
        except (ProcessLookupError, OSError):  # the thread ended meanwhile
            return None
        self.raised_tid = tid
        return tid

    def _find_clock(self) -> int | None:
        try:
            tids = os.listdir(self.task_dir)
        except OSError:
            return None
        for name in tids:
            try:
                with open(f"{self.task_dir}/{name}/comm") as f:
                    if f.read().strip() == CLOCK_THREAD_NAME:
                        return int(name)
            except (OSError, ValueError):
                continue
        return None
