"""Concurrent recognitions: how many utterances the speech service can have in flight at once
while a live RTP stream on the same machine keeps its timing.

    scripts/in-netns .venv/bin/python bench/bench_speech_load.py \\
        [--levels 10,25,50,75,100] [--seconds 15] [--out bench/results/FILE.txt]

* The service: the real ``ivr.speech.service`` process, started with the command line
  ``ivr run`` uses (``SpeechServiceRunner.command()`` from the settings: ``speech.processes``,
  ``speech.backend``), fed over its Unix socket by ``SpeechClient``, the workers' client (its
  5 s timeout included: a later answer counts as a timeout, as a worker would see it).
* The utterances: the default flow's English menu phrases (ivr/flows/default.yaml,
  main_menu) and yes/no words, said by espeak-ng voices at two speeds (bench_speech.py's
  voices), through G.711 mu-law, cut as the worker's VAD cuts them (SpeechListener, the
  menu's end-of-speech silence).
* The load: N callers, each sending an utterance, awaiting the answer and sending the next at
  once: N utterances in flight at all times for ``--seconds`` (closed loop, no think time; a
  real menu has seconds of prompt between utterances, so this is the worst case for N).
  With ``--paced``: N calls speaking in real time, each utterance taking its length to say
  before the worker sends it, the next said once the answer is back (N calls recognising).
* The RTP probe: a process sending ``--streams`` RTP streams (20 ms packets, absolute
  deadlines, on one clock tick as a worker's clock thread serves its legs; at the SCHED_RR
  priority ``media.realtime_priority`` when the kernel allows it, as the workers' clock
  threads run) to loopback ports, captured with tcpdump;
  its inter-arrival gaps are counted with bench_capacity.py's measure (``rtp_stats``: share
  of gaps over 30 ms, the worst gap, losses).

Per level: recognitions/s, answer latency (request sent -> answer) p50/p99, RTF as the
caller sees it (latency / utterance length, p50/p99), the service's CPU per second of audio,
timeouts and errors, RTP gaps. A baseline row (no recognition) comes first, in the same run.
Levels rise until RTP keeps < 99.9 % of gaps under 30 ms, or answers come back slower than
real time (median latency over the utterance's length), or the last level. Bounded: each
level ``--seconds`` plus at most the client timeout to drain.

Never from pytest; needs tcpdump (scripts/in-netns gives it the namespace's capabilities).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_capacity import GAP_S, RtpStats, rtp_stats  # noqa: E402
from ivr.config import load_settings  # noqa: E402
from ivr.controller_speech import SpeechServiceRunner  # noqa: E402
from ivr.flow import load_flow  # noqa: E402
from ivr.flow.model import MenuNode  # noqa: E402
from ivr.flow.speech import NO_PHRASES, YES_PHRASES  # noqa: E402
from ivr.speech.listener import SpeechListener  # noqa: E402
from ivr.speech.recognizer import Grammar, RecognizerError  # noqa: E402
from ivr.speech.service import SpeechClient  # noqa: E402
from ivr.speech.vad import VadSettings  # noqa: E402
from tests import speech_audio as sa  # noqa: E402

VOICES = ["en-us", "en+m3", "en-us+f3"]  # as bench_speech.py --voices 3
SPEEDS = [140, 180]
PROBE_PORT = 40000  # rtp_stats counts destination ports PROBE_PORT + 4n, n >= 1
FRAME_S = 0.020


@dataclass(frozen=True)
class Utterance:
    pcm: np.ndarray
    grammar: Grammar
    audio_s: float


def utterances() -> list[Utterance]:
    """The menu's phrases and the yes/no words, cut by the worker's VAD."""
    flow, _ = load_flow(ROOT / "ivr" / "flows" / "default.yaml")
    node = flow.nodes["main_menu"]
    assert isinstance(node, MenuNode)
    menu = Grammar.of(node.phrases_for("en-US"))
    yes_no = Grammar.of([*YES_PHRASES, *NO_PHRASES])
    settings = VadSettings(end_silence_ms=node.end_silence_ms,
                           max_utterance_ms=node.max_utterance_ms)
    out: list[Utterance] = []
    texts = [(p, menu) for p in node.phrases_for("en-US")] + [("yes", yes_no), ("no", yes_no)]
    for voice in VOICES:
        for speed in SPEEDS:
            for text, grammar in texts:
                line = sa.with_noise(sa.concat(sa.silence(0.6), sa.g711(sa.speech(
                    text, voice=voice, speed_wpm=speed)), sa.silence(1.2)), 30, len(out))
                got: list[np.ndarray] = []
                listener = SpeechListener(settings, on_started=lambda _s: None,
                                          on_utterance=lambda pcm, _e, _r, got=got:
                                          got.append(pcm))
                for i in range(line.size // 160):
                    listener.feed(line[i * 160:(i + 1) * 160], (i + 1) * FRAME_S)
                if got:
                    pcm = got[0].astype(np.int16)
                    out.append(Utterance(pcm, grammar, pcm.size / 8000))
    return out


# -- the RTP probe ---------------------------------------------------------------------

def probe_sender(port: int, streams: int, seconds: float, priority: int) -> None:
    """Runs in its own process: ``streams`` RTP streams to 127.0.0.1:port, port + 4, ...,
    20 ms packets, all sent on one clock tick as a worker's clock thread serves its legs."""
    how = "normal priority (--probe-priority 0)"
    try:
        if priority:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
            how = f"SCHED_RR {priority}"
    except (OSError, AttributeError) as exc:
        how = f"normal priority (SCHED_RR {priority} refused: {exc})"
    print(how, flush=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"\xff" * 160
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * FRAME_S
        if due - start > seconds:
            break
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        for k in range(streams):
            head = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF,
                               0x5EEC1000 + k)
            sock.sendto(head + payload, ("127.0.0.1", port + 4 * k))
        n += 1


class Probe:
    """tcpdump plus the sender process, for one level."""

    def __init__(self, work: Path, streams: int, seconds: float, priority: int) -> None:
        self.pcap = work / "probe.pcap"
        self.streams = streams
        log = work / "tcpdump.log"
        port = PROBE_PORT + 4
        self.tcpdump = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "--immediate-mode", "-s", "64", "-B", "8192", "-w",
             str(self.pcap),
             f"udp and dst portrange {port}-{port + 4 * streams}"], stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"))  # noqa: SIM115 (closed with the process)
        deadline = time.monotonic() + 10
        while "listening on" not in log.read_text(errors="replace"):
            if self.tcpdump.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {log.read_text()}")
            time.sleep(0.05)
        self.sender = subprocess.Popen(
            [sys.executable, __file__, "--probe-sender", str(port), str(streams),
             str(seconds), str(priority)], stdout=subprocess.PIPE, text=True)
        assert self.sender.stdout is not None
        self.how = self.sender.stdout.readline().strip()

    def finish(self) -> RtpStats:
        self.sender.wait(timeout=120)
        time.sleep(1.0)  # tcpdump writes what it has read when interrupted
        self.tcpdump.send_signal(signal.SIGINT)
        self.tcpdump.wait(timeout=10)
        return rtp_stats(self.pcap, self.streams, PROBE_PORT)

    def kill(self) -> None:
        for p in (self.sender, self.tcpdump):
            if p.poll() is None:
                p.kill()
                p.wait()


# -- the service -----------------------------------------------------------------------

def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its live children (the prefork processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


@dataclass
class Level:
    n: int
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    rtf: list[float] = field(default_factory=list)  # latency / utterance length
    audio_s: float = 0.0
    timeouts: int = 0
    errors: int = 0
    first_error: str = ""
    cpu_s: float = 0.0
    rtp: RtpStats | None = None
    rtp_how: str = ""
    load_avg: float = 0.0  # the machine's 1-minute load average at the level's end


async def load(level: Level, client: SpeechClient, utts: list[Utterance],
               seconds: float, paced: bool) -> None:
    stop_at = time.monotonic() + seconds

    async def caller(i: int) -> None:
        rnd = random.Random(i)
        if paced:  # the calls did not all begin speaking at the same instant
            await asyncio.sleep(rnd.uniform(0, 2.0))
        while time.monotonic() < stop_at:
            u = rnd.choice(utts)
            if paced:  # the caller says it in real time; the worker sends it at its end
                await asyncio.sleep(u.audio_s)
            sent = time.monotonic()
            try:
                await client.recognize(u.pcm, u.grammar, "en-US")
            except RecognizerError as exc:
                if "did not answer" in str(exc):
                    level.timeouts += 1
                else:
                    level.errors += 1
                    level.first_error = level.first_error or str(exc)
                    await asyncio.sleep(0.1)
                continue
            took = time.monotonic() - sent
            level.latencies_s.append(took)
            level.rtf.append(took / u.audio_s)
            level.audio_s += u.audio_s

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(level.n)))
    level.seconds = time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(level: Level) -> str:
    rtp = level.rtp
    gaps = (f"{100 * rtp.good_share:7.3f} % < 30 ms ({rtp.gaps_over}/{rtp.gaps} over), worst "
            f"{rtp.worst_gap_ms:5.1f} ms, lost {rtp.lost}; load avg {level.load_avg:.1f}"
            if rtp is not None and rtp.gaps else "no RTP captured")
    if level.n == 0:
        return f"  baseline (no recognition)                                     RTP {gaps}"
    done = len(level.latencies_s)
    cpu_rtf = level.cpu_s / level.audio_s if level.audio_s else float("nan")
    return (f"  N={level.n:3d}: {done / level.seconds:5.1f} recognitions/s, latency p50 "
            f"{1000 * pct(level.latencies_s, 50):5.0f} ms p99 "
            f"{1000 * pct(level.latencies_s, 99):5.0f} ms, RTF p50 {pct(level.rtf, 50):5.2f} "
            f"p99 {pct(level.rtf, 99):5.2f}, service CPU/audio {cpu_rtf:5.3f} "
            f"({level.cpu_s / level.seconds:.2f} cores), "
            f"timeouts {level.timeouts}, errors {level.errors}"
            + (f" (first: {level.first_error})" if level.first_error else "") + f"; RTP {gaps}")


def run_level(n: int, args: argparse.Namespace, work: Path, service_pid: int,
              client: SpeechClient, utts: list[Utterance], priority: int) -> Level:
    level = Level(n)
    probe = Probe(work, args.streams, args.seconds + 1.0, priority)
    try:
        level.rtp_how = probe.how
        time.sleep(0.5)
        cpu0 = cpu_s(service_pid)
        if n:
            asyncio.run(load(level, client, utts, args.seconds, args.paced))
        else:
            time.sleep(args.seconds)
            level.seconds = args.seconds
        level.cpu_s = cpu_s(service_pid) - cpu0
        level.rtp = probe.finish()
        level.load_avg = os.getloadavg()[0]
    finally:
        probe.kill()
    return level


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="10,25,50,75,100")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--streams", type=int, default=4,
                    help="RTP probe streams on one clock (a worker's 4 legs)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--probe-priority", type=int, metavar="PRIO",
                    help="the probe's SCHED_RR priority (default: media.realtime_priority; "
                    "0: normal priority, as a clock thread without CAP_SYS_NICE runs)")
    ap.add_argument("--paced", action="store_true",
                    help="N calls speaking in real time (each utterance takes its length to "
                    "say, sent at its end, the next said once the answer is back) instead of "
                    "N utterances in flight")
    ap.add_argument("--keep-going", action="store_true",
                    help="run every level even after one fails (to see RTP under more load)")
    ap.add_argument("--probe-sender", nargs=4, metavar=("PORT", "STREAMS", "SECONDS", "PRIO"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe_sender:
        port, streams, seconds, priority = args.probe_sender
        probe_sender(int(port), int(streams), float(seconds), int(priority))
        return 0
    try:
        levels = [int(x) for x in args.levels.split(",")]
    except ValueError:
        ap.error(f"--levels {args.levels!r}: give numbers separated by commas, e.g. 10,25,50")
    if not 1.0 <= args.seconds <= 300:
        ap.error(f"--seconds {args.seconds}: give 1 to 300")
    if not 1 <= args.streams <= 100:
        ap.error(f"--streams {args.streams}: give 1 to 100")
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    utts = utterances()
    with tempfile.TemporaryDirectory(prefix="speech-load-") as tmp:
        work = Path(tmp)
        settings = load_settings(None, env={"IVR_PATHS_VAR_DIR": str(work / "var")})
        runner = SpeechServiceRunner(settings)
        cmd = runner.command()
        service = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert service.stdout is not None
            if "ready" not in service.stdout.readline():
                raise RuntimeError("the speech service did not start")
            client = SpeechClient(runner.socket_path)
            say(f"bench_speech_load: {len(utts)} utterances ({min(u.audio_s for u in utts):.2f}"
                f"-{max(u.audio_s for u in utts):.2f} s, mean "
                f"{np.mean([u.audio_s for u in utts]):.2f} s as the VAD cuts them); service "
                f"{settings.speech.backend}, speech.processes {settings.speech.processes} "
                f"({' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:6]))} "
                f"...); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
                f"{args.seconds:.0f} s per level, " + (
                    "N calls speaking in real time" if args.paced
                    else "N utterances in flight at all times"))
            priority = (settings.media.realtime_priority if args.probe_priority is None
                        else args.probe_priority)
            base = run_level(0, args, work, service.pid, client, utts, priority)
            say(f"  RTP probe: {args.streams} streams on one clock, {base.rtp_how}; gaps "
                f"counted by bench_capacity.rtp_stats (over {GAP_S * 1000:.0f} ms)")
            say(row(base))
            best, failed = 0, False
            for n in levels:
                level = run_level(n, args, work, service.pid, client, utts, priority)
                say(row(level))
                rtp_ok = level.rtp is not None and level.rtp.good_share >= 0.999
                real_time = pct(level.rtf, 50) <= 1.0 and level.timeouts == 0
                if not rtp_ok or not real_time:
                    why = [] if rtp_ok else ["RTP < 99.9 % of gaps under 30 ms"]
                    why += [] if real_time else ["answers slower than real time"]
                    say(f"  {'failed' if args.keep_going else 'stop'} at N={n}: "
                        f"{' and '.join(why)}")
                    failed = True
                    if not args.keep_going:
                        break
                elif not failed:
                    best = n
            say(f"  concurrent recognitions kept (RTP >= 99.9 % gaps < 30 ms, median answer "
                f"within the utterance's length, no timeouts): {best or 'none of the levels'}"
                f"; load average {os.getloadavg()[0]:.2f} at the end")
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
    if args.out:
        cmdline = " ".join(["bench/bench_speech_load.py", *sys.argv[1:]])
        with open(args.out, "a") as f:
            f.write(f"# {cmdline}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
