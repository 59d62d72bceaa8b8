"""``ivr-harness load``: one scenario at a steady concurrency, from a pool of callers.

The pure part is :class:`LoadStats` (results in, percentiles and failure groups out, with
``now`` passed in) and :class:`Pacer` (how many calls to start now). :func:`run_load` is the
I/O: it forks the callers (:mod:`ivr.harness.pool`), paces ``call`` commands at ``rate``
per second up to ``calls`` at once, for ``duration_s`` (or until ``total`` calls started),
and reads each caller's results.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

TIMINGS = ("key_to_prompt_ms", "time_to_first_audio_ms", "post_dial_delay_ms",
           "jitter_buffer_ms")
WINDOW_S = 5.0  # the report's time axis: percentiles per window
_MAX_US = 600_000_000  # 10 minutes
# The parent's turn: starts due are sent at most this late (the Pacer keeps the rate).
PACE_S = 0.05


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)  # microseconds, 3 significant digits


def _cause(failure: str) -> str:
    """A failure message without its numbers, so that alike failures group together."""
    first = failure.split("; heard", 1)[0]
    return re.sub(r"\d+(\.\d+)?", "N", first)


@dataclass
class LoadStats:
    """Counts, HDR histograms of every timing (whole run and per window), failure groups."""

    started: int = 0
    passed: int = 0
    failed: int = 0
    sip_call_ids: list[str] = field(default_factory=list)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)  # a full message each
    whole: dict[str, HdrHistogram] = field(default_factory=lambda: {t: _histogram()
                                                                    for t in TIMINGS})
    windows: dict[int, dict[str, HdrHistogram]] = field(default_factory=dict)
    start_s: float = 0.0  # wall clock of the run's start
    call_s: float = 0.0  # the calls' durations added up: over the run's wall time, calls up

    def add(self, result: dict[str, Any]) -> None:
        if result.get("ok"):
            self.passed += 1
        else:
            self.failed += 1
            message = str(result.get("failure", ""))
            group = (str(result.get("failed_step", "")), _cause(message))
            self.failures[group] += 1
            self.examples.setdefault(group, message)
        self.call_s += float(result.get("duration_s") or 0.0)
        if result.get("sip_call_id"):
            self.sip_call_ids.append(str(result["sip_call_id"]))
        k = int((float(result.get("started_at", self.start_s)) - self.start_s) // WINDOW_S)
        win = self.windows.setdefault(k, {t: _histogram() for t in TIMINGS})
        for name in TIMINGS:
            value = result.get(name)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is None:
                    continue
                us = max(1, min(_MAX_US, int(float(v) * 1000)))
                self.whole[name].record_value(us)
                win[name].record_value(us)

    @staticmethod
    def summary(h: HdrHistogram) -> dict[str, float | int]:
        if h.get_total_count() == 0:
            return {"count": 0}
        return {"count": h.get_total_count(),
                **{f"p{p}": round(h.get_value_at_percentile(p) / 1000, 1) for p in (50, 90, 99)},
                "max": round(h.get_max_value() / 1000, 1)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started, "passed": self.passed, "failed": self.failed,
            "call_seconds": round(self.call_s, 1),
            "timings_ms": {t: self.summary(h) for t, h in self.whole.items()},
            "failures": [{"step": s, "cause": c, "count": n, "example": self.examples[(s, c)]}
                         for (s, c), n in self.failures.most_common()],
            "over_time": [{"t_s": k * WINDOW_S,
                           **{t: self.summary(h) for t, h in w.items()}}
                          for k, w in sorted(self.windows.items())],
            "sip_call_ids": self.sip_call_ids,
        }


class Pacer:
    """Starts calls at ``rate_per_s`` at most, keeping ``concurrency`` up (pure: ``now_s``
    passed in)."""

    def __init__(self, rate_per_s: float, concurrency: int, now_s: float) -> None:
        if rate_per_s <= 0 or concurrency <= 0:
            raise ValueError("the rate and the number of calls must be above 0")
        self.rate = rate_per_s
        self.concurrency = concurrency
        self._credit = 1.0
        self._last = now_s

    def due(self, now_s: float, active: int) -> int:
        """How many calls to start now."""
        self._credit = min(self._credit + (now_s - self._last) * self.rate,
                           max(1.0, self.rate))
        self._last = now_s
        n = min(int(self._credit), self.concurrency - active)
        if n > 0:
            self._credit -= n
            return n
        return 0


def parse_rate(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(/s)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--rate {text!r}: give calls per second, e.g. 20/s")
    return float(m.group(1))


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise ValueError(f"--duration {text!r}: give e.g. 90s, 10m or 1h")
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


@dataclass(frozen=True)
class LoadPlan:
    calls: int  # concurrency
    rate_per_s: float
    duration_s: float
    total: int | None  # stop starting after this many calls
    sip_port: int
    rtp_port: int

    @property
    def processes(self) -> int:
        from .pool import CALLS_PER_PROCESS

        return max(1, math.ceil(self.calls / CALLS_PER_PROCESS))


async def run_load(plan: LoadPlan, callers: list[Any], stats: LoadStats,
                   on_tick: Any = None) -> None:
    """Drive the forked ``callers`` (see :mod:`ivr.harness.pool`) through the plan."""
    from .pool import CALLS_PER_PROCESS

    loop = asyncio.get_running_loop()
    streams = []
    for c in callers:
        c.sock.setblocking(False)
        streams.append(await asyncio.open_connection(sock=c.sock))
    done_reading = []

    async def read(c: Any, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            c.active -= 1
            stats.add(json.loads(line))

    for c, (reader, _) in zip(callers, streams, strict=True):
        done_reading.append(loop.create_task(read(c, reader)))
    stats.start_s = time.time()
    t0 = loop.time()
    pacer = Pacer(plan.rate_per_s, plan.calls, t0)
    while True:
        now = loop.time()
        active = sum(c.active for c in callers)
        out_of_calls = plan.total is not None and stats.started >= plan.total
        if now - t0 >= plan.duration_s or out_of_calls:
            break
        for _ in range(pacer.due(now, active)):
            if plan.total is not None and stats.started >= plan.total:
                break
            c = min(callers, key=lambda c: c.active)
            if c.active >= CALLS_PER_PROCESS:
                break
            c.active += 1
            stats.started += 1
            streams[callers.index(c)][1].write(b"call\n")
        if on_tick is not None:
            on_tick(now - t0, active)
        await asyncio.sleep(PACE_S)
    for _, writer in streams:
        writer.write(b"stop\n")
    while any(not t.done() for t in done_reading):
        if on_tick is not None:
            on_tick(loop.time() - t0, sum(c.active for c in callers))
        await asyncio.sleep(0.1)
    for c in callers:
        try:
            os.waitpid(c.pid, 0)
        except ChildProcessError:
            pass


def stop_callers(callers: list[Any]) -> None:
    for c in callers:
        try:
            os.kill(c.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
