"""Capacity of the whole stack (Kamailio + pool of workers) against sipp's own C responder.

    .venv/bin/python bench/bench_capacity.py --levels 50,100,200,300,400,500 --out cap.json

Options: ``--legs 4|1|2`` (calls per worker, IVR_WORKER_MAX_CALLS), ``--pump-timeout-ms N``,
``--call-s 20``, ``--rate 50`` (calls started per second), ``--only stack|baseline``,
``--spare 4`` (workers beyond ceil(calls / legs)), ``--commit REV`` (measure that commit),
``--wait-quiet S``, ``--keep`` (keep the work dir: logs, stores, captures). The six levels
above take about 10 minutes (a minute or so per level and side). It needs root or
unprivileged user namespaces, sipp (sip-tester), tcpdump, kamailio and iproute2 (ip, tc):
``scripts/setup --bench``. Run it on demand, never from pytest.

What it does, per level of N concurrent calls, once against each side:

* It re-executes itself under ``scripts/in-netns``: everything runs in a new network
  namespace with only a loopback device, so no packet can leave the machine.
* **stack**: ``ivr run`` (Kamailio on 127.0.0.1:5060, the controller, the zygote and
  ceil(N / legs) + spare workers, fresh var dir, ``bench/flows/bench.yaml``: prompts all
  call long, every key accepted, the caller hangs up). **baseline**: ``sipp -rtp_echo`` as the
  answering side (``bench/sipp/uas_echo.xml``): what this machine carries with C and no work.
* One sipp caller process places N calls (``--rate`` per second) of ``--call-s`` seconds;
  each call plays one generated pcap: continuous PCMU (low noise) with 4 RFC 4733 digits
  (1, 2, 3, 4 at 20/40/60/80 % of the call). Each call has its own media port
  ([auto_media_port]) on 127.0.0.2, so what comes back is attributed per call.
* RTP sent to the callers is captured on lo by tcpdump (headers only) and read here.
  Those packets are then dropped at lo's ingress (a tc rule) before the IP stack: sipp's
  pcap player opens one raw UDP socket per call and Linux would hand a copy of every
  incoming UDP packet to each of them (N copies per packet, charged to whoever sent it).
* CPU is the exact run time of every thread (``/proc/PID/task/TID/schedstat``; utime+stime
  are sampled by the 250 Hz tick and miss timer-driven threads) between the two edges of a
  steady window when all N calls are up: all processes under ``ivr run`` (controller,
  zygote, workers, Kamailio and its children); for the baseline the sipp UAS. PSS is the sum
  of Pss from /proc/PID/smaps_rollup of the same processes, in the middle of that window.
* ``--commit REV`` runs the stack from ``git archive REV`` (the repository is only read), so
  a tree being edited meanwhile cannot change what is measured.

How to read the output (one block per level, then a summary):

* ``calls ok / failed`` from sipp's statistics; ``sipp caller's errors`` counts its error
  log by kind: the SIP code that aborted a call (503, unexpected BYE...), receive timeouts,
  late messages for calls already aborted, and the caller's own overload warnings.
* ``CPU % core per 100 calls``: the stack's CPU over the window as a share of one core,
  scaled to 100 calls; the breakdown (controller, zygote, workers, Kamailio) and the workers'
  threads say where it goes: ``media`` (PJMEDIA's ioqueue thread: RTP in, jitter buffers),
  ``clock`` (PJMEDIA's 20 ms clock: conference bridge, prompt players, RTP out), ``pump``
  (the pjsip-pump thread: libHandleEvents, SIP), ``loop`` (the asyncio thread: flows, records
  to the controller). ``sipp caller``, ``kernel threads`` (ksoftirqd...) and ``machine busy``
  (of all cores, VM steal apart) show whether the machine itself was saturated: figures from
  a saturated run are not capacity. ``other processes`` is busy time that is none of these:
  over 15 % of a core marks the run *disturbed* (something else ran on the machine).
* ``PSS MB per call``: the stack's PSS with N calls up divided by N; ``idle`` is the stack's
  PSS before any call.
* ``RTP to callers``: per call, packets/s in the middle of the call (50 is the G.711 rate
  at 20 ms), the share of inter-arrival gaps over 30 ms (the goal: under 0.1 %), the worst
  gap, losses by sequence number, and calls that got no RTP at all. The baseline echoes what
  the callers send, so its gaps include the sipp caller's own send timing; the stack's RTP
  is clocked by PJSIP and does not.
* ``DTMF logged / sent``: rows of kind 'dtmf' in the stack's store against 4 per call that
  sipp completed; ``completed calls < 4 digits`` counts calls the caller ended with digits
  missing from the store.
* ``capacity``: the largest level with 0 failed calls and >= 99.9 % of gaps under 30 ms,
  for each side, and their ratio. Goals are printed with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from tests.rtp import write_rtp_pcap_with_dtmf  # noqa: E402

NETNS_ENV = "BENCH_CAPACITY_IN_NETNS"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

STACK_SIP_PORT = 5060
STACK_WORKER_PORT_BASE = 5100
STACK_RTP_PORT_START = 10000  # 20 per worker slot; below the ephemeral range
CALLER_SIP_PORT = 15060
CALLER_MEDIA_IP = "127.0.0.2"  # dropped at lo's ingress after capture (see the docstring)
CALLER_MEDIA_PORT = 20000  # sipp -mp; call n gets 20000 + 4n ([auto_media_port+4])
UAS_SIP_PORT = 25060
UAS_MEDIA_PORT = 31000
DIGITS = "1234"
GAP_S = 0.030
RTP_PPS = 50.0
SINK_DEV = "benchsink"

REF_CPU_PER_100 = 20.0  # one PJSIP process with raised limits: 19-21 % of a core per 100 calls
REF_PSS_MB_PER_CALL = 0.14
GOAL_CALLS = 450
GOAL_GOOD_RTP = 0.999
GOAL_CPU_FACTOR = 1.1
GOAL_PSS_MB_PER_CALL = 2.5


# ------------------------------------------------------------------------------ processes


class Stopped(Exception):
    """SIGTERM/SIGHUP: stop as on Ctrl-C."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(f"signal {signum}")


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), to tell a PID from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


class Processes:
    """Every process this run started or found under one it started; stopped by PID only."""

    def __init__(self) -> None:
        self.popen: list[subprocess.Popen[bytes]] = []
        self.seen: dict[int, int] = {}  # pid -> start time (descendants of our processes)

    def spawn(self, cmd: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, cwd=cwd, start_new_session=True)
        self.popen.append(proc)
        st = start_time(proc.pid)
        if st is not None:
            self.seen[proc.pid] = st
        return proc

    def remember(self, pids: dict[int, int]) -> None:
        self.seen.update(pids)

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
             timeout_s: float = 10.0) -> int:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill_leftovers(self) -> list[int]:
        """SIGKILL every remembered process still alive (same PID and start time)."""
        killed = []
        for pid, st in list(self.seen.items()):
            if start_time(pid) == st:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            del self.seen[pid]
        return killed

    def stop_all(self) -> None:
        for proc in reversed(self.popen):
            self.stop(proc, timeout_s=5.0)
        self.kill_leftovers()
        for proc in self.popen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)


# ------------------------------------------------------------------------------ /proc


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    comm: str
    ticks: int  # utime + stime
    start: int


def read_proc(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rp = stat.rindex(")")
    comm = stat[stat.index("(") + 1:rp]
    f = stat[rp + 2:].split()
    return ProcInfo(pid, int(f[1]), comm, int(f[11]) + int(f[12]), int(f[19]))


def all_procs() -> dict[int, ProcInfo]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                out[info.pid] = info
    return out


def descendants(root: int, procs: dict[int, ProcInfo]) -> dict[int, ProcInfo]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: dict[int, ProcInfo] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in out:
            out[pid] = procs[pid]
            todo.extend(children.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def classify_stack(root: int, tree: dict[int, ProcInfo]) -> dict[int, str]:
    """controller | zygote | worker | kamailio | other, for each process under ``ivr run``."""
    zygotes = {pid for pid, p in tree.items() if p.ppid == root and "ivr.zygote" in cmdline(pid)}
    out = {}
    for pid, p in tree.items():
        if pid == root:
            out[pid] = "controller"
        elif pid in zygotes:
            out[pid] = "zygote"
        elif p.ppid in zygotes:
            out[pid] = "worker"
        elif p.comm.startswith("kamailio"):
            out[pid] = "kamailio"
        else:
            out[pid] = "other"
    return out


def machine_ticks() -> tuple[int, int, int, int]:
    """(busy, idle, softirq, steal) jiffies of all CPUs from /proc/stat; busy excludes steal
    (time the hypervisor gave to others)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f[:7]) - idle, idle, f[6], f[7]


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def thread_runtimes(pid: int) -> dict[tuple[int, str], int]:
    """Nanoseconds on CPU of each thread of ``pid`` (``/proc/PID/task/TID/schedstat``: exact,
    unlike utime/stime, which the 250 Hz tick samples and which miss threads that wake on a
    timer and sleep again before the next tick), by (tid, name); the main thread is "main"."""
    out: dict[tuple[int, str], int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        out[(int(tid), "main" if int(tid) == pid else name)] = ns
    return out


@dataclass
class Snapshot:
    """CPU run time of the measured processes (and each worker's threads) at one moment."""

    t: float
    procs: dict[int, tuple[str, int]]  # pid -> (class, ns)
    threads: dict[int, dict[tuple[int, str], int]]  # worker pid -> threads
    machine: tuple[int, int, int, int]


def snapshot(classes: dict[int, str]) -> Snapshot:
    t = time.monotonic()
    procs: dict[int, tuple[str, int]] = {}
    threads: dict[int, dict[tuple[int, str], int]] = {}
    for pid, cls in classes.items():
        thr = thread_runtimes(pid)
        procs[pid] = (cls, sum(thr.values()))
        if cls == "worker":
            threads[pid] = thr
    return Snapshot((t + time.monotonic()) / 2, procs, threads, machine_ticks())


def cpu_between(a: Snapshot, b: Snapshot) -> dict[str, float]:
    """% of one core per process class between two snapshots (a process born meanwhile
    counts from zero)."""
    span = b.t - a.t
    out: dict[str, float] = {}
    for pid, (cls, ns) in b.procs.items():
        before = a.procs.get(pid, (cls, 0))[1]
        out[cls] = out.get(cls, 0.0) + 100 * max(0, ns - before) / 1e9 / span
    return out


def threads_between(a: Snapshot, b: Snapshot, top: int = 6) -> dict[str, float]:
    """% of one core per thread name over all workers."""
    span = b.t - a.t
    names: Counter[str] = Counter()
    for pid, thr in b.threads.items():
        before = a.threads.get(pid, {})
        for key, ns in thr.items():
            names[key[1]] += max(0, ns - before.get(key, 0))
    return {k: round(100 * v / 1e9 / span, 1) for k, v in names.most_common(top)}


def kernel_threads() -> dict[int, str]:
    """Kernel threads (children of kthreadd): softirq work deferred to ksoftirqd lands there."""
    return {p.pid: "kernel" for p in all_procs().values() if p.ppid == 2}


# ------------------------------------------------------------------------------ pcap / RTP


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """(timestamp, frame) of each record of a classic pcap file (µs or ns timestamps)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        else:
            endian = ">"
            magic = struct.unpack(">I", head[:4])[0]
        scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        if linktype != 1:
            raise ValueError(f"{path}: link type {linktype}, expected Ethernet (lo)")
        rec = struct.Struct(endian + "IIII")
        while True:
            hdr = f.read(16)
            if len(hdr) < 16:
                return
            sec, frac, incl, _orig = rec.unpack(hdr)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield sec + frac * scale, data


@dataclass
class RtpStats:
    calls_expected: int = 0
    calls_with_rtp: int = 0
    packets: int = 0
    pps_mean: float = 0.0
    pps_min: float = 0.0
    gaps: int = 0  # inter-arrival intervals counted
    gaps_over: int = 0  # of which > 30 ms
    good_share: float = 0.0  # 1 - gaps_over / gaps
    worst_gap_ms: float = 0.0
    calls_with_gaps: int = 0
    lost: int = 0  # by RTP sequence numbers
    lost_share: float = 0.0


def rtp_stats(path: Path, calls: int, media_port: int) -> RtpStats:
    """Per call (destination port media_port + 4n): packets/s in the middle of the call,
    inter-arrival gaps over 30 ms and losses by sequence number."""
    times: dict[int, list[float]] = {}
    seqs: dict[int, list[int]] = {}
    if path.exists():
        for ts, frame in read_pcap(path):
            if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
                continue
            ihl = (frame[14] & 0x0F) * 4
            if frame[23] != 17:
                continue
            udp = 14 + ihl
            dport = (frame[udp + 2] << 8) | frame[udp + 3]
            off = dport - media_port
            if off <= 0 or off % 4:
                continue
            rtp = udp + 8
            if len(frame) < rtp + 12 or frame[rtp] >> 6 != 2 or 72 <= frame[rtp + 1] & 0x7F <= 76:
                continue
            n = off // 4
            times.setdefault(n, []).append(ts)
            seqs.setdefault(n, []).append((frame[rtp + 2] << 8) | frame[rtp + 3])
    st = RtpStats(calls_expected=calls, calls_with_rtp=len(times))
    rates = []
    for n, ts_list in times.items():
        t = np.array(ts_list)
        st.packets += t.size
        if t.size >= 2:
            d = np.diff(t)
            st.gaps += d.size
            over = int((d > GAP_S).sum())
            st.gaps_over += over
            st.calls_with_gaps += over > 0
            st.worst_gap_ms = max(st.worst_gap_ms, float(d.max()) * 1000)
            lo, hi = t[0] + 2.0, t[-1] - 2.0
            if hi - lo >= 2.0:
                rates.append(float(((t >= lo) & (t < hi)).sum()) / (hi - lo))
        s = np.array(seqs[n], dtype=np.int64)
        ext = np.concatenate([[0], np.cumsum((np.diff(s) + 32768) % 65536 - 32768)])
        st.lost += max(0, int(ext.max() - ext.min() + 1) - len(set(ext.tolist())))
    if rates:
        st.pps_mean = float(np.mean(rates))
        st.pps_min = float(np.min(rates))
    st.good_share = 1.0 - st.gaps_over / st.gaps if st.gaps else 0.0
    st.lost_share = st.lost / (st.packets + st.lost) if st.packets else 0.0
    return st


def make_caller_pcap(path: Path, call_s: float) -> int:
    """~call_s of continuous low-level noise as PCMU with RFC 4733 digits 1-4 at 20, 40, 60,
    80 % of the call."""
    rng = np.random.default_rng(2833)
    seconds = max(1.0, call_s - 0.2)
    pcm = np.clip(rng.normal(0, 300, int(8000 * seconds)), -32768, 32767).astype(np.int16)
    digits = [(call_s * (i + 1) / (len(DIGITS) + 1), d) for i, d in enumerate(DIGITS)]
    packets, _events = write_rtp_pcap_with_dtmf(path, pcm, digits)
    return packets


# ------------------------------------------------------------------------------ sipp


@dataclass
class SippOutcome:
    returncode: int | None = None
    ok: int = 0
    failed: int = 0
    created: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    retransmissions: int = 0
    max_current: int = 0


def read_sipp_stats(stat_csv: Path, err_log: Path) -> SippOutcome:
    out = SippOutcome()
    if stat_csv.exists():
        rows = [r.split(";") for r in stat_csv.read_text(errors="replace").splitlines() if r]
        if len(rows) >= 2:
            head = rows[0]
            for row in rows[1:]:
                with contextlib.suppress(ValueError, IndexError):
                    out.max_current = max(out.max_current, int(row[head.index("CurrentCall")]))
            last = dict(zip(head, rows[-1], strict=False))

            def num(key: str) -> int:
                try:
                    return int(last.get(key, "0") or 0)
                except ValueError:
                    return 0

            out.ok = num("SuccessfulCall(C)")
            out.failed = num("FailedCall(C)")
            out.created = num("TotalCallCreated")
            out.retransmissions = num("Retransmissions(C)")
            for key in head:
                if key.startswith("Failed") and key.endswith("(C)") and key != "FailedCall(C)":
                    if num(key):
                        out.failures[key[6:-3]] = num(key)
    if err_log.exists():
        out.failures.update(read_sipp_errors(err_log.read_text(errors="replace")))
    return out


_SIPP_ENTRY = re.compile(r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t\d+\.\d+: ")


def read_sipp_errors(text: str) -> dict[str, int]:
    """What sipp's -trace_err file says, one count per kind of entry: why calls were aborted
    (the SIP code met, or the message that timed out), messages for calls already dead, and
    sipp's own overload warnings (the caller itself short of CPU)."""
    kinds: Counter[str] = Counter()
    for entry in _SIPP_ENTRY.split(text)[1:]:
        first = entry.strip().splitlines()[0] if entry.strip() else ""
        if m := re.search(r"while (expecting '(\w+)'|pausing).*?received '(?:SIP/2\.0 )?"
                          r"(\d{3}[^'\r\n]{0,30}|\w+)", first):
            what = f"expecting {m.group(2)}" if m.group(2) else "in the call"
            kinds[f"got {m.group(3).strip()} {what}"] += 1
        elif m := re.search(r"receive timeout on message [^:]*:(\d+)", first):
            kinds[f"receive timeout at scenario message {m.group(1)}"] += 1
        elif "unexpected BYE" in first:
            kinds["BYE from the far end during the call"] += 1
        elif m := re.search(r"Dead call .*received '(?:SIP/2\.0 )?(\d{3}|\w+)", first):
            kinds[f"(late {m.group(1)} for an aborted call)"] += 1
        elif "watchdog" in first:
            kinds["(sipp caller overloaded: watchdog tripped)"] += 1
        elif first:
            kinds["(other) " + re.sub(r"\d+", "#", first)[:60]] += 1
    return dict(kinds)


def sipp_caller_cmd(args: argparse.Namespace, scenario: Path, target: str, calls: int,
                    work: Path) -> list[str]:
    ramp_s = calls / args.rate
    return [
        "sipp", target, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(CALLER_SIP_PORT),
        "-mi", CALLER_MEDIA_IP, "-mp", str(CALLER_MEDIA_PORT),
        "-m", str(calls), "-l", str(calls), "-r", str(args.rate), "-rp", "1000",
        "-timeout", f"{int(ramp_s + args.call_s + 60)}s", "-timeout_error",
        "-recv_timeout", "15000", "-nostdin", "-aa", "-max_recv_loops", "1000",
        "-trace_err", "-error_file", str(work / "caller_errors.log"),
        "-trace_stat", "-stf", str(work / "caller_stat.csv"), "-fd", "1",
        "-trace_screen", "-screen_file", str(work / "caller_screen.log"),
    ]


# ------------------------------------------------------------------------------ one run


@dataclass
class RunResult:
    side: str
    calls: int
    legs: int | None = None
    workers: int | None = None
    pump_timeout_ms: int | None = None
    window_s: tuple[float, float] = (0.0, 0.0)
    sipp: SippOutcome = field(default_factory=SippOutcome)
    cpu_pct_core: float = 0.0  # of one core, whole stack, in the window
    cpu_per_100: float = 0.0
    cpu_breakdown: dict[str, float] = field(default_factory=dict)  # % of one core
    cpu_threads: dict[str, float] = field(default_factory=dict)  # workers' threads, % core
    idle_threads: dict[str, float] = field(default_factory=dict)  # the same with no call
    idle_breakdown: dict[str, float] = field(default_factory=dict)  # by process, no call
    kernel_cpu_pct: float = 0.0  # kernel threads (ksoftirqd...), % of one core
    caller_cpu_pct: float = 0.0
    capture_cpu_pct: float = 0.0
    machine_busy_pct: float = 0.0  # of all cores
    machine_softirq_pct: float = 0.0
    others_cpu_pct: float = 0.0  # % of one core: the machine's busy time not ours
    machine_steal_pct: float = 0.0  # of all cores: taken by the hypervisor
    idle_cpu_pct: float = 0.0
    pss_idle_mb: float = 0.0
    pss_mb: float = 0.0
    pss_mb_per_call: float = 0.0
    pss_breakdown: dict[str, float] = field(default_factory=dict)
    processes: int = 0
    rtp: RtpStats = field(default_factory=RtpStats)
    dtmf_logged: int | None = None
    dtmf_sent: int | None = None
    dtmf_short_calls: int | None = None  # completed calls with fewer than 4 digits logged
    store_calls: dict[str, int] = field(default_factory=dict)
    log_problems: dict[str, int] = field(default_factory=dict)
    capture_dropped: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def disturbed(self) -> bool:
        return self.others_cpu_pct > 15.0

    @property
    def clean(self) -> bool:
        return (self.sipp.failed == 0 and self.sipp.ok == self.calls
                and self.rtp.calls_with_rtp == self.calls
                and self.rtp.good_share >= GOAL_GOOD_RTP)


def source_tree(commit: str | None, work: Path) -> tuple[Path, str]:
    """The tree whose ``ivr`` and ``media`` run as the stack, and a description of it: the
    working tree, or ``git archive`` of ``commit`` unpacked under ``work`` (the repository is
    only read)."""
    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    if commit is None:
        head = git("rev-parse", "--short", "HEAD") or "?"
        dirty = git("status", "--porcelain", "--", "ivr", "media")
        n = len(dirty.splitlines())
        return ROOT, f"working tree at {head}" + (f" + {n} changed files in ivr/ media/" if n
                                                   else "")
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    if not full:
        raise SystemExit(f"--commit {commit}: not a commit of {ROOT}")
    dest = work / f"src-{full[:10]}"
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", full],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest, f"commit {full[:10]} ({git('log', '-1', '--format=%s', full)[:60]})"


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.src, self.src_text = source_tree(args.commit, work)
        self.procs = Processes()
        self.pcap = work / "caller.pcap"
        self.scenario = work / "caller.xml"
        self.sink_ok = False
        self.hold_sockets: list[Any] = []
        self.flow = BENCH / "flows" / "bench.yaml"  # bench_acd.py swaps in its queue flow
        self.extra_env: dict[str, str] = {}
        self.legs_per_caller = 1  # 2 when the flow has a queue node (bench_acd.py)

    # -- set-up ----------------------------------------------------------------------

    def prepare(self) -> None:
        packets = make_caller_pcap(self.pcap, self.args.call_s)
        text = (BENCH / "sipp" / "caller.xml.in").read_text()
        self.scenario.write_text(text.replace("__PCAP__", str(self.pcap))
                                 .replace("__CALL_MS__", str(int(self.args.call_s * 1000))))
        print(f"caller media: {self.pcap.name}, {packets} packets "
              f"({packets * 0.02:.1f} s PCMU, digits {','.join(DIGITS)} as RFC 4733)")
        self.sink_ok = self._sink()

    def _sink(self) -> bool:
        """Drop RTP to the callers' media address at lo's ingress, after tcpdump saw it."""
        cmds = [
            ["ip", "link", "add", SINK_DEV, "type", "veth", "peer", "name", SINK_DEV + "1"],
            ["ip", "link", "set", SINK_DEV, "up"],
            ["tc", "qdisc", "add", "dev", "lo", "ingress"],
            ["tc", "filter", "add", "dev", "lo", "parent", "ffff:", "protocol", "ip", "prio",
             "1", "u32", "match", "ip", "dst", f"{CALLER_MEDIA_IP}/32", "match", "ip",
             "protocol", "17", "0xff", "action", "mirred", "egress", "redirect", "dev",
             SINK_DEV],
        ]
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                print(f"WARNING: {' '.join(cmd[:4])}...: {r.stderr.strip()}; RTP to the callers "
                      "is not dropped before the IP stack: sipp's raw sockets then copy every "
                      "packet N times and the CPU figures are inflated", file=sys.stderr)
                return False
        return True

    # -- common pieces -----------------------------------------------------------------

    def _capture(self, work: Path, calls: int) -> subprocess.Popen[bytes]:
        lo, hi = CALLER_MEDIA_PORT + 4, CALLER_MEDIA_PORT + 4 * calls
        filt = (f"udp and dst host {CALLER_MEDIA_IP} and dst portrange {lo}-{hi} "
                "and (udp[2:2] & 3) = 0")
        proc = self.procs.spawn(
            ["tcpdump", "-i", "lo", "-n", "-s", "64", "-B", "32768", "-w",
             str(work / "rtp.pcap"), filt], work / "tcpdump.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in (work / "tcpdump.log").read_text(errors="replace"):
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"tcpdump did not start: {(work / 'tcpdump.log').read_text()}")

    def _stop_capture(self, proc: subprocess.Popen[bytes], work: Path) -> int | None:
        time.sleep(1.2)  # let the last blocks of the ring reach the file
        self.procs.stop(proc, signal.SIGINT)
        m = re.search(r"(\d+) packets dropped by kernel",
                      (work / "tcpdump.log").read_text(errors="replace"))
        return int(m.group(1)) if m else None

    def _window(self, calls: int) -> tuple[float, float]:
        ramp = calls / self.args.rate
        lo, hi = ramp + 1.5, self.args.call_s - 0.5
        if hi - lo < 3.0:
            raise SystemExit(
                f"{calls} calls at {self.args.rate}/s take {ramp:.0f} s to start, which leaves "
                f"no steady window in {self.args.call_s:.0f} s calls: raise --rate or --call-s")
        return lo, hi

    def _run_calls(self, res: RunResult, work: Path, target: str, measured: Any) -> None:
        """Start capture and sipp; CPU snapshots at the window's edges, PSS in its middle;
        wait for the end and read what sipp, the capture and the store say."""
        calls = res.calls
        lo, hi = self._window(calls)
        res.window_s = (round(lo, 1), round(hi, 1))
        capture = self._capture(work, calls)
        cmd = sipp_caller_cmd(self.args, self.scenario, target, calls, work)
        t0 = time.monotonic()
        caller = self.procs.spawn(cmd, work / "caller.out", cwd=work)

        def classes() -> dict[int, str]:
            return {**kernel_threads(), **{pid: c for pid, (c, _p) in measured().items()},
                    caller.pid: "sipp caller", capture.pid: "tcpdump", os.getpid(): "bench"}

        a: Snapshot | None = None
        b: Snapshot | None = None
        pss_at = (lo + hi) / 2
        pss_done = False
        limit = calls / self.args.rate + self.args.call_s + 75
        while caller.poll() is None:
            now = time.monotonic() - t0
            if now > limit:
                res.notes.append("sipp caller did not finish in time; stopped")
                self.procs.stop(caller)
                break
            if a is None and now >= lo:
                a = snapshot(classes())
            if b is None and a is not None and now >= hi:
                b = snapshot(classes())
            if not pss_done and now >= pss_at:
                pss_done = True
                by_cls: Counter[str] = Counter()
                now_measured = measured()
                for pid, (cls, _p) in now_measured.items():
                    by_cls[cls] += pss_kb(pid)
                res.pss_breakdown = {k: round(v / 1024, 1) for k, v in by_cls.items()}
                res.pss_mb = sum(by_cls.values()) / 1024
                res.pss_mb_per_call = res.pss_mb / calls
                res.processes = len(now_measured)
            time.sleep(0.05)
        res.capture_dropped = self._stop_capture(capture, work)
        if a is not None and b is not None and b.t > a.t:
            self._cpu(res, a, b)
        else:
            res.notes.append("the calls ended before the window closed: no CPU figures")
        res.rtp = rtp_stats(work / "rtp.pcap", calls, CALLER_MEDIA_PORT)
        if not self.args.keep:
            with contextlib.suppress(FileNotFoundError):
                (work / "rtp.pcap").unlink()
        res.sipp = read_sipp_stats(work / "caller_stat.csv", work / "caller_errors.log")
        res.sipp.returncode = caller.returncode

    @staticmethod
    def _cpu(res: RunResult, a: Snapshot, b: Snapshot) -> None:
        cpu = cpu_between(a, b)
        res.caller_cpu_pct = cpu.pop("sipp caller", 0.0)
        res.capture_cpu_pct = cpu.pop("tcpdump", 0.0)
        res.kernel_cpu_pct = cpu.pop("kernel", 0.0)
        bench_pct = cpu.pop("bench", 0.0)
        res.cpu_breakdown = {k: round(v, 1) for k, v in sorted(cpu.items())}
        res.cpu_pct_core = sum(cpu.values())
        res.cpu_per_100 = res.cpu_pct_core * 100 / res.calls
        res.cpu_threads = threads_between(a, b)
        busy = b.machine[0] - a.machine[0]
        total = busy + b.machine[1] - a.machine[1]
        res.machine_busy_pct = 100 * busy / total if total else 0.0
        res.machine_softirq_pct = 100 * (b.machine[2] - a.machine[2]) / total if total else 0.0
        steal = b.machine[3] - a.machine[3]
        res.machine_steal_pct = 100 * steal / (total + steal) if total + steal else 0.0
        ours = (res.cpu_pct_core + res.caller_cpu_pct + res.capture_cpu_pct + bench_pct
                + res.kernel_cpu_pct)
        res.others_cpu_pct = max(0.0, res.machine_busy_pct * (os.cpu_count() or 1) - ours)
        if res.disturbed:
            res.notes.append(f"DISTURBED: other processes used {res.others_cpu_pct:.0f} % of a "
                             "core during the window (not this bench's); rerun when quiet")

    def wait_quiet(self) -> str | None:
        """Wait (up to --wait-quiet s) until other work on the machine uses under 15 % of a
        core; returns a note when it never did."""
        ncpu = os.cpu_count() or 1
        deadline = time.monotonic() + self.args.wait_quiet
        busy = 0.0
        while True:
            a = machine_ticks()
            time.sleep(1.0)
            b = machine_ticks()
            total = (b[0] - a[0]) + (b[1] - a[1])
            busy = 100 * ncpu * (b[0] - a[0]) / total if total else 0.0
            if busy < 15.0:
                return None
            if time.monotonic() > deadline:
                note = (f"the machine was busy with other work before this run "
                        f"({busy:.0f} % of a core): figures may be disturbed")
                print(f"WARNING: {note}", file=sys.stderr)
                return note

    def _idle(self, res: RunResult, measured: Any, seconds: float = 3.0) -> None:
        """CPU (% of a core, by process class and the workers' threads) and PSS of the
        measured processes with no call up."""
        a = snapshot({pid: c for pid, (c, _p) in measured().items()})
        time.sleep(seconds)
        now = measured()
        b = snapshot({pid: c for pid, (c, _p) in now.items()})
        cpu = cpu_between(a, b)
        res.idle_cpu_pct = sum(cpu.values())
        res.idle_breakdown = {k: round(v, 1) for k, v in sorted(cpu.items())}
        res.idle_threads = threads_between(a, b, top=5)
        res.pss_idle_mb = sum(pss_kb(pid) for pid in now) / 1024

    # -- the stack ----------------------------------------------------------------------

    def run_stack(self, calls: int) -> RunResult:
        args = self.args
        work = self.work / f"stack-{calls}"
        work.mkdir(parents=True, exist_ok=True)
        # a flow with a queue keeps a leg for each caller's agent (ivr/worker.py max_callers)
        callers = max(1, args.legs // self.legs_per_caller)
        workers = math.ceil(calls / callers) + args.spare
        res = RunResult("stack", calls, legs=args.legs, workers=workers,
                        pump_timeout_ms=args.pump_timeout_ms)
        if (note := self.wait_quiet()) is not None:
            res.notes.append(note)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env.update({
            "IVR_SIP_PORT": str(STACK_SIP_PORT),
            "IVR_SIP_BIND_ADDRESS": "127.0.0.1",
            "IVR_RTP_PORT_START": str(STACK_RTP_PORT_START),
            "IVR_POOL_WORKERS": str(workers),
            "IVR_POOL_MAX_WORKERS": str(workers + args.spare),
            "IVR_POOL_WORKER_PORT_BASE": str(STACK_WORKER_PORT_BASE),
            "IVR_WORKER_MAX_CALLS": str(args.legs),
            "IVR_WORKER_DRAIN_TIMEOUT_S": "2",
            "IVR_PATHS_VAR_DIR": str(work / "var"),
            "IVR_PATHS_FLOW": str(self.flow),
            "IVR_PATHS_PROMPTS_DIR": str(self.src / "prompts"),
            "IVR_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(
                [str(self.src), *filter(None, [os.environ.get("PYTHONPATH")])]),
        })
        if "max_calls_per_source" in (self.src / "ivr" / "config.py").read_text():
            # one sipp process brings every call from one address, as a carrier trunk does
            env["IVR_FRONT_MAX_CALLS_PER_SOURCE"] = "0"
        if args.pump_timeout_ms is not None:
            env["IVR_MEDIA_PUMP_TIMEOUT_MS"] = str(args.pump_timeout_ms)
        env.update(args.settings)
        env.update(self.extra_env)
        self.before_start(work, env)
        log = work / "stack.log"
        stack = self.procs.spawn([sys.executable, "-m", "ivr.cli", "run"], log, env=env,
                                 cwd=self.src)
        try:
            deadline = time.monotonic() + 60 + workers * 0.3
            while '"controller.ready"' not in log.read_text(errors="replace"):
                if stack.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                    raise RuntimeError(f"the stack did not start; its log ends:\n{tail}")
                time.sleep(0.1)

            def measured() -> dict[int, tuple[str, ProcInfo]]:
                tree = descendants(stack.pid, all_procs())
                self.procs.remember({pid: p.start for pid, p in tree.items()})
                classes = classify_stack(stack.pid, tree)
                return {pid: (classes[pid], p) for pid, p in tree.items()}

            time.sleep(1.0)
            self._idle(res, measured)
            if self.stack_ready(res, work, env):
                self._run_calls(res, work, f"127.0.0.1:{STACK_SIP_PORT}", measured)
        finally:
            rc = self.procs.stop(stack, timeout_s=40)
            left = self.procs.kill_leftovers()
            if rc not in (0, None):
                res.notes.append(f"ivr run exited with {rc}")
            if left:
                res.notes.append(f"killed {len(left)} stack processes left after it stopped")
        self._stack_records(res, work)
        return res

    def before_start(self, work: Path, env: dict[str, str]) -> None:
        """Called with the stack's environment before ``ivr run`` starts (bench_acd.py adds
        its agents to the store here)."""

    def stack_ready(self, res: RunResult, work: Path, env: dict[str, str]) -> bool:
        """Called once the stack is up and idle figures are taken; False skips the calls
        (bench_acd.py registers its agents here and needs them ready)."""
        return True

    def _stack_records(self, res: RunResult, work: Path) -> None:
        db = work / "var" / "ivr.sqlite3"
        if db.exists():
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                res.dtmf_logged = con.execute(
                    "SELECT count(*) FROM call_events WHERE kind = 'dtmf'").fetchone()[0]
                res.dtmf_short_calls = con.execute(
                    "SELECT count(*) FROM calls c WHERE c.end_reason = 'caller_hangup' AND "
                    "(SELECT count(*) FROM call_events e WHERE e.call_id = c.call_id "
                    f"AND e.kind = 'dtmf') < {len(DIGITS)}").fetchone()[0]
                for reason, by, count in con.execute(
                        "SELECT coalesce(end_reason, 'open'), coalesce(hangup_by, '-'), "
                        "count(*) FROM calls GROUP BY 1, 2"):
                    res.store_calls[f"{reason}/{by}"] = count
            finally:
                con.close()
        res.dtmf_sent = len(DIGITS) * res.sipp.ok if res.sipp.ok else len(DIGITS) * res.calls
        problems: Counter[str] = Counter()
        for line in (work / "stack.log").read_text(errors="replace").splitlines():
            if '"controller.stopping"' in line:
                break  # what follows is the bench's own stop
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if line.strip() and not line.startswith((" ", "Traceback")):
                    problems["non-JSON: " + line.strip()[:70]] += 1
                continue
            if not isinstance(rec, dict):
                continue
            event = str(rec.get("event", ""))
            if rec.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                what = event or str(rec.get("msg", ""))
                problems[f"{rec['level']} {rec.get('logger')}: "
                         + re.sub(r"\d+", "#", what)[:80]] += 1
            elif event in ("call.no_media", "pool.worker_lost", "pool.calls_failed",
                           "pool.worker_exit", "controller.orphans_closed"):
                problems[event] += 1
        klog = work / "var" / "run" / "kamailio" / "kamailio.log"
        if klog.exists():
            for line in klog.read_text(errors="replace").splitlines():
                if re.search(r"\b(ERROR|CRITICAL|ALERT|WARNING)\b", line):
                    msg = re.sub(r"^.*?(ERROR|CRITICAL|ALERT|WARNING)", r"\1", line)
                    problems["kamailio " + re.sub(r"\d+", "#", msg)[:80]] += 1
        res.log_problems = dict(problems.most_common(12))

    # -- the baseline ---------------------------------------------------------------------

    def run_baseline(self, calls: int) -> RunResult:
        work = self.work / f"baseline-{calls}"
        work.mkdir(parents=True, exist_ok=True)
        res = RunResult("baseline", calls)
        if (note := self.wait_quiet()) is not None:
            res.notes.append(note)
        uas = self.procs.spawn(
            ["sipp", "-sf", str(BENCH / "sipp" / "uas_echo.xml"), "-i", "127.0.0.1",
             "-p", str(UAS_SIP_PORT), "-mi", "127.0.0.1", "-mp", str(UAS_MEDIA_PORT),
             "-rtp_echo", "-nostdin", "-max_recv_loops", "1000",
             "-trace_err", "-error_file", str(work / "uas_errors.log")],
            work / "uas.out", cwd=work)
        try:
            time.sleep(1.0)
            if uas.poll() is not None:
                raise RuntimeError(f"sipp UAS exited: {(work / 'uas.out').read_text()[-800:]}")

            def measured() -> dict[int, tuple[str, ProcInfo]]:
                p = read_proc(uas.pid)
                return {uas.pid: ("sipp uas", p)} if p else {}

            self._idle(res, measured, 2.0)
            self._run_calls(res, work, f"127.0.0.1:{UAS_SIP_PORT}", measured)
        finally:
            self.procs.stop(uas, signal.SIGINT, timeout_s=5)
        return res

    def close(self) -> None:
        self.procs.stop_all()


# ------------------------------------------------------------------------------ output


THREAD_LABELS = {
    "main": "loop",  # the worker's asyncio thread (flows, store messages)
    "python": "pump",  # the pjsip-pump thread: libHandleEvents, SIP (a Python thread)
    "media": "media",  # PJMEDIA's ioqueue thread: RTP/RTCP in, jitter buffers
    "clock": "clock",  # PJMEDIA's 20 ms clock: conference bridge, players, RTP out
    "ev_thread": "events",  # PJMEDIA's event manager
}


def fmt_threads(threads: dict[str, float]) -> str:
    return ", ".join(f"{THREAD_LABELS.get(k, k)} {v}" for k, v in threads.items())


def fmt_failures(res: RunResult) -> str:
    if not res.sipp.failures:
        return "-"
    return ", ".join(f"{k} x{v}" for k, v in sorted(res.sipp.failures.items(),
                                                    key=lambda kv: -kv[1]))


def print_level(calls: int, stack: RunResult | None, base: RunResult | None) -> None:
    cols = [r for r in (stack, base) if r is not None]
    if not cols:
        return
    first = cols[0]
    print(f"\n=== {calls} concurrent calls — window {first.window_s[0]}–{first.window_s[1]} s "
          f"after the first INVITE ===")
    head = f"{'':34}" + "".join(
        f"{'stack' if r.side == 'stack' else 'baseline (sipp UAS echo)':>26}" for r in cols)
    print(head)

    def row(label: str, values: list[str]) -> None:
        print(f"{label:34}" + "".join(f"{v:>26}" for v in values))

    def pick(fn: Any) -> list[str]:
        out = []
        for r in cols:
            try:
                out.append(fn(r))
            except (TypeError, ValueError, ZeroDivisionError):
                out.append("-")
        return out

    row("setup", pick(lambda r: (f"{r.workers} workers x {r.legs} legs, pump "
                                 f"{r.pump_timeout_ms or 'default'}") if r.side == "stack"
                      else "1 process"))
    row("calls ok / failed", pick(lambda r: f"{r.sipp.ok} / {r.sipp.failed}"))
    row("CPU % of a core, whole side", pick(lambda r: f"{r.cpu_pct_core:.1f}"))
    row("CPU % core per 100 calls", pick(lambda r: f"{r.cpu_per_100:.1f}"))
    row("CPU idle (no call), % core", pick(lambda r: f"{r.idle_cpu_pct:.1f}"))
    row("sipp caller CPU, % core", pick(lambda r: f"{r.caller_cpu_pct:.1f}"))
    row("tcpdump CPU, % core", pick(lambda r: f"{r.capture_cpu_pct:.1f}"))
    row(f"machine busy, % of {os.cpu_count()} cores", pick(
        lambda r: f"{r.machine_busy_pct:.1f} (softirq {r.machine_softirq_pct:.1f})"))
    row("VM steal, % of all cores", pick(lambda r: f"{r.machine_steal_pct:.1f}"))
    row("kernel threads, % core", pick(lambda r: f"{r.kernel_cpu_pct:.1f}"))
    row("other processes, % core", pick(lambda r: f"{r.others_cpu_pct:.1f}"))
    row("PSS MB per call", pick(lambda r: f"{r.pss_mb_per_call:.2f}"))
    row("PSS MB total / idle", pick(lambda r: f"{r.pss_mb:.0f} / {r.pss_idle_mb:.0f}"))
    row("RTP calls with audio", pick(lambda r: f"{r.rtp.calls_with_rtp} / {r.calls}"))
    row("RTP pkt/s per call mean (min)", pick(
        lambda r: f"{r.rtp.pps_mean:.1f} ({r.rtp.pps_min:.1f}) vs 50"))
    row("RTP gaps > 30 ms", pick(
        lambda r: f"{100 * r.rtp.gaps_over / r.rtp.gaps:.3f} % ({r.rtp.calls_with_gaps} calls)"))
    row("RTP worst gap ms / lost", pick(
        lambda r: f"{r.rtp.worst_gap_ms:.0f} / {r.rtp.lost}"))
    row("DTMF logged / sent (4 x ok)", pick(
        lambda r: f"{r.dtmf_logged} / {r.dtmf_sent}" if r.dtmf_sent is not None else "n/a"))
    row("completed calls < 4 digits", pick(
        lambda r: f"{r.dtmf_short_calls}" if r.dtmf_short_calls is not None else "n/a"))
    for r in cols:
        who = r.side
        if r.sipp.failures:
            print(f"  {who} sipp caller's errors: {fmt_failures(r)}")
        if r.cpu_breakdown:
            print(f"  {who} CPU by process, % core: "
                  + ", ".join(f"{k} {v}" for k, v in r.cpu_breakdown.items()))
        if r.cpu_threads:
            print(f"  {who} worker threads, % core: {fmt_threads(r.cpu_threads)}")
        if r.idle_breakdown and len(r.idle_breakdown) > 1:
            print(f"  {who} CPU with no call, % core: "
                  + ", ".join(f"{k} {v}" for k, v in r.idle_breakdown.items())
                  + f"; worker threads: {fmt_threads(r.idle_threads)}")
        if r.pss_breakdown and len(r.pss_breakdown) > 1:
            print(f"  {who} PSS by process, MB: "
                  + ", ".join(f"{k} {v}" for k, v in r.pss_breakdown.items()))
        if r.store_calls:
            print(f"  {who} store, calls by end: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(r.store_calls.items())))
        if r.log_problems:
            print(f"  {who} log problems: "
                  + "; ".join(f"{k} x{v}" for k, v in r.log_problems.items()))
        if r.capture_dropped:
            print(f"  {who}: tcpdump dropped {r.capture_dropped} packets (RTP figures low)")
        for note in r.notes:
            print(f"  {who}: {note}")
    sys.stdout.flush()


def capacity(results: list[RunResult], side: str) -> int:
    ok = [r.calls for r in results if r.side == side and r.clean]
    return max(ok) if ok else 0


def print_summary(results: list[RunResult]) -> dict[str, Any]:
    print("\n=== summary ===")
    print(f"{'calls':>6} {'side':9} {'ok':>5} {'fail':>5} {'cpu/100':>8} {'machine':>8} "
          f"{'caller':>7} {'PSS/call':>9} {'pkt/s':>6} {'gaps>30':>8} {'dtmf':>10}")
    for r in sorted(results, key=lambda r: (r.calls, r.side != "stack")):
        gaps = f"{100 * r.rtp.gaps_over / r.rtp.gaps:.3f}%" if r.rtp.gaps else "-"
        dtmf = f"{r.dtmf_logged}/{r.dtmf_sent}" if r.dtmf_sent is not None else "n/a"
        mark = "  *disturbed" if r.disturbed else ""
        print(f"{r.calls:>6} {r.side:9} {r.sipp.ok:>5} {r.sipp.failed:>5} "
              f"{r.cpu_per_100:>7.1f}% {r.machine_busy_pct:>7.1f}% {r.caller_cpu_pct:>6.1f}% "
              f"{r.pss_mb_per_call:>8.2f}M {r.rtp.pps_mean:>6.1f} {gaps:>8} {dtmf:>10}{mark}")
    if any(r.disturbed for r in results):
        print("*disturbed: other processes on the machine used over 15 % of a core during the "
              "window; capacity figures of those runs are not this stack's alone")
    cap_stack = capacity(results, "stack")
    cap_base = capacity(results, "baseline")
    summary: dict[str, Any] = {"capacity_stack": cap_stack, "capacity_baseline": cap_base}
    tested = sorted({r.calls for r in results})
    print(f"\ncapacity (largest level with 0 failed calls and >= {100 * GOAL_GOOD_RTP:.1f} % "
          f"of RTP gaps under 30 ms; levels tried: {','.join(map(str, tested))}):")
    print(f"  stack {cap_stack} calls, baseline {cap_base} calls", end="")
    if cap_base:
        ratio = cap_stack / cap_base
        summary["ratio"] = ratio
        print(f", ratio {ratio:.2f}" + (" (baseline held every level tried: the ratio is a "
                                        "ceiling's floor)" if cap_base == max(tested) else ""))
    else:
        print()
    stack_at = [r for r in results if r.side == "stack" and r.calls == cap_stack]
    if stack_at:
        r = stack_at[0]
        cpu_goal = REF_CPU_PER_100 * GOAL_CPU_FACTOR
        print(f"goals (reference: one PJSIP process, {REF_CPU_PER_100:.0f} % of a core per 100 "
              f"calls, {REF_PSS_MB_PER_CALL} MB per call):")
        checks = [
            (f">= {GOAL_CALLS} concurrent calls", cap_stack >= GOAL_CALLS, f"{cap_stack}"),
            ("0 failed calls", r.sipp.failed == 0, f"{r.sipp.failed}"),
            (f">= {100 * GOAL_GOOD_RTP:.1f} % RTP gaps under 30 ms",
             r.rtp.good_share >= GOAL_GOOD_RTP, f"{100 * r.rtp.good_share:.3f} %"),
            (f"CPU <= {cpu_goal:.0f} % of a core per 100 calls", r.cpu_per_100 <= cpu_goal,
             f"{r.cpu_per_100:.1f} % at {r.calls} calls"),
            (f"PSS <= {GOAL_PSS_MB_PER_CALL} MB per call",
             r.pss_mb_per_call <= GOAL_PSS_MB_PER_CALL, f"{r.pss_mb_per_call:.2f} MB"),
        ]
        for name, ok, value in checks:
            print(f"  [{'met' if ok else 'NOT met':7}] {name}: {value}")
        summary["goals"] = {name: {"met": ok, "value": value} for name, ok, value in checks}
    return summary


# ------------------------------------------------------------------------------ main


def net_devices() -> list[str]:
    """Network devices of this process's namespace (/proc/self/net/dev; /sys/class/net
    shows the namespace sysfs was mounted in)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="50,100,200,300,400,500",
                    help="concurrent calls per level, comma-separated")
    ap.add_argument("--legs", type=int, default=4, choices=(1, 2, 3, 4),
                    help="calls per worker (IVR_WORKER_MAX_CALLS)")
    ap.add_argument("--spare", type=int, default=4,
                    help="workers beyond ceil(calls / legs); pool.max_workers adds as many")
    ap.add_argument("--pump-timeout-ms", type=int, default=None,
                    help="IVR_MEDIA_PUMP_TIMEOUT_MS (default: the stack's own, 100)")
    ap.add_argument("--set", action="append", default=[], metavar="IVR_SECTION_FIELD=VALUE",
                    help="a stack setting for every level (repeatable), e.g. "
                    "IVR_MEDIA_RTP_THREAD=false")
    ap.add_argument("--call-s", type=float, default=20.0, help="call length, seconds")
    ap.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    ap.add_argument("--only", choices=("stack", "baseline"), help="run one side only")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--commit", help="run the stack from this commit (git archive into the "
                    "work dir) instead of the working tree")
    ap.add_argument("--wait-quiet", type=float, default=120.0,
                    help="before each run, wait up to this many seconds for other work on the "
                    "machine to stop (a warning is printed if it does not)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, captures)")
    args = ap.parse_args(argv)
    args.settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("IVR_"):
            ap.error(f"--set {item!r}: expected IVR_SECTION_FIELD=VALUE")
        args.settings[name] = value
    args.level_list = [int(x) for x in args.levels.split(",") if x.strip()]
    if not args.level_list or min(args.level_list) < 1 or max(args.level_list) > 2000:
        ap.error("--levels: 1 to 2000 calls each")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":
        script = ROOT / "scripts" / "in-netns"
        env = {**os.environ, NETNS_ENV: "1"}
        os.execve(str(script), [str(script), sys.executable, str(Path(__file__).resolve()),
                                *argv], env)
    if net_devices() != ["lo"]:
        print("bench_capacity: not in a loopback-only network namespace (scripts/in-netns "
              f"could not make one?); network devices: {', '.join(net_devices())}",
              file=sys.stderr)
        return 2
    for tool in ("sipp", "tcpdump", "kamailio", "tc", "ip"):
        if shutil.which(tool) is None:
            print(f"bench_capacity: {tool} is missing (scripts/setup --bench)", file=sys.stderr)
            return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    work = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    bench: Bench | None = None
    results: list[RunResult] = []
    started = time.monotonic()
    print(f"bench_capacity: levels {args.levels}, {args.call_s:.0f} s calls at {args.rate:g}/s, "
          f"legs {args.legs}, pump {args.pump_timeout_ms or 'default'} ms; work dir {work}")
    if args.settings:
        print("stack settings: " + ", ".join(f"{k}={v}" for k, v in args.settings.items()))
    code = 0
    try:
        bench = Bench(args, work)
        print(f"stack code: {bench.src_text}")
        bench.prepare()
        for calls in args.level_list:
            stack = base = None
            if args.only != "baseline":
                stack = bench.run_stack(calls)
                results.append(stack)
                time.sleep(2)
            if args.only != "stack":
                base = bench.run_baseline(calls)
                results.append(base)
                time.sleep(2)
            print_level(calls, stack, base)
        summary = print_summary(results)
        if args.out:
            args.out.write_text(json.dumps({
                "args": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items()},
                "cpus": os.cpu_count(),
                "stack_code": bench.src_text,
                "results": [{**asdict(r), "clean": r.clean, "disturbed": r.disturbed}
                            for r in results],
                "summary": summary,
            }, indent=2))
            print(f"figures written to {args.out}")
    except (KeyboardInterrupt, Stopped):
        print("\nbench_capacity: interrupted; stopping what it started", file=sys.stderr)
        code = 130
    finally:
        if bench is not None:
            bench.close()
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"bench_capacity: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
