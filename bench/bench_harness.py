"""The IVR measured from the caller's side by ivr-harness, at rising load.

    scripts/in-netns .venv/bin/python bench/bench_harness.py --levels 10,20,40 \\
        --duration-s 40 --out bench/results/harness.txt

Per level N, against one ``ivr run`` stack (Kamailio, the pool; the default flow, workers
enough for the highest level):

* **harness**: ``ivr-harness load bench/scenarios/language_menu.yaml --calls N`` for
  ``--duration-s``: every call hears the language menu, presses 1, hears the welcome, hangs
  up. Reported: key -> first frame of the next prompt (p50/p99), time to first audio,
  failures, and the harness's own CPU (user+system of the load process and its callers, from
  getrusage after they exit) as % of one core per 100 calls up, where calls up is the mean
  over the run (the calls' durations added up over its wall time, start-up included: a
  level the rate or the machine cannot fill is not credited with calls it never had).
  The rate is ``--rate`` or, by default, enough to hold N calls of the scenario's ~4 s.
* **sipp**: the same concurrency from sipp (calls that stay ``--sipp-call-s`` and send no
  RTP: the IVR plays to them and hears silence), with 4 (``--probes``) harness probe calls
  at once beside them measuring the same timings: what the IVR does for callers when the
  load is not the harness's own; and how busy the machine's cores were meanwhile.

``--flow bench`` runs both against the capacity benchmark's flow (``bench/flows/bench.yaml``:
one leg per caller, 4 callers a worker: the flow of docs/architecture.md's capacity figures) and
times the probes with ``bench/scenarios/bench_menu.yaml`` (each key to the menu played
again): the IVR's key -> prompt at the levels this machine can hold, which the default flow's
queues (2 legs a caller) halve.

Run it inside a loopback-only network namespace (``scripts/in-netns``); never from pytest.
The machine's other load is not controlled: read figures from a busy machine as such.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import sipp  # noqa: E402
from tests.conftest import start_stack  # noqa: E402

SCENARIOS = {"default": ROOT / "bench" / "scenarios" / "language_menu.yaml",
             "bench": ROOT / "bench" / "scenarios" / "bench_menu.yaml"}
FLOWS = {"default": ROOT / "ivr" / "flows" / "default.yaml",
         "bench": ROOT / "bench" / "flows" / "bench.yaml"}
CALLERS_PER_WORKER = {"default": 2, "bench": 4}  # a queue keeps a leg for the agent


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def harness_load(scenario: Path, dial: str, calls: int, rate: float, duration_s: float,
                 report: Path, sip_port: int, rtp_port: int
                 ) -> tuple[dict[str, Any], float, float]:
    """Run ivr-harness load; (its report, its CPU seconds, its wall seconds)."""
    cpu0, t0 = children_cpu_s(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ivr.harness.cli", "load", str(scenario), "--dial", dial,
         "--calls", str(calls), "--rate", f"{rate}/s", "--duration", f"{duration_s}s",
         "--no-live", "--report", str(report), "--sip-port", str(sip_port),
         "--rtp-port", str(rtp_port)],
        cwd=ROOT, capture_output=True, text=True, timeout=duration_s + 120)
    wall, cpu = time.monotonic() - t0, children_cpu_s() - cpu0
    data = json.loads(report.with_suffix(".json").read_text()) if \
        report.with_suffix(".json").is_file() else {"error": proc.stdout[-2000:] + proc.stderr}
    return data, cpu, wall


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def line(side: str, n: int, data: dict[str, Any], extra: str = "") -> str:
    if "error" in data:
        return f"{side:8} {n:4}  ERROR {data['error'][-300:]}"
    k = data["timings_ms"]["key_to_prompt_ms"]
    f = data["timings_ms"]["time_to_first_audio_ms"]
    fails = "; ".join(f"{x['count']}x {x['step']}: {x['example']}" for x in data["failures"][:3])
    return (f"{side:8} {n:4}  calls {data['started']:4} ok {data['passed']:4} failed "
            f"{data['failed']:3}  key->prompt p50 {k.get('p50', '-')} p99 {k.get('p99', '-')} "
            f"max {k.get('max', '-')} ms  first audio p50 {f.get('p50', '-')} p99 "
            f"{f.get('p99', '-')} ms{extra}" + (f"\n{'':14}failures: {fails}" if fails else ""))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="10,20,40")
    ap.add_argument("--duration-s", type=float, default=40)
    ap.add_argument("--rate", type=float, help="calls started per second (default: N/3.5)")
    ap.add_argument("--sipp-call-s", type=float, default=30)
    ap.add_argument("--only", choices=("harness", "sipp"))
    ap.add_argument("--probes", type=int, default=4,
                    help="harness calls at once beside the sipp calls")
    ap.add_argument("--flow", choices=tuple(FLOWS), default="default",
                    help="the stack's flow and the harness's scenario (see above)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.probes < 1:
        ap.error(f"--probes {args.probes}: give 1 or more harness calls")
    levels = [int(x) for x in args.levels.split(",")]
    out: list[str] = [f"# bench/bench_harness.py {' '.join(argv)}  (flow: {args.flow})",
                      f"# {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.cpu_count()} cores"]
    print(out[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-harness-") as tmp_s:
        tmp = Path(tmp_s)
        # the default flow has queues: a worker keeps a leg per caller for the agent, so 2
        # callers each; every call comes from 127.0.0.1 (sipp and the harness alike), as
        # from a carrier's trunk: no per-source limit
        scenario = SCENARIOS[args.flow]
        workers = math.ceil(max(levels) / CALLERS_PER_WORKER[args.flow]) + 4
        stack = start_stack(tmp, workers=workers, flow=FLOWS[args.flow], env={
            "IVR_POOL_MIN_IDLE_WORKERS": "2", "IVR_POOL_MAX_WORKERS": str(workers + 4),
            "IVR_FRONT_MAX_CALLS_PER_SOURCE": "0"})
        dial = f"sip:ivr@127.0.0.1:{stack.port}"
        try:
            for n in levels:
                if args.only != "sipp":
                    rate = args.rate or max(2.0, n / 3.5)
                    data, cpu, wall = harness_load(scenario, dial, n, rate, args.duration_s,
                                                   tmp / f"h{n}", 19700, 40000)
                    up = float(data.get("call_seconds", 0.0)) / wall
                    per100 = 100 * (cpu / wall) / max(up, 1e-9) * 100
                    out.append(line("harness", n, data,
                                    f"  {up:.1f} calls up (mean)  harness CPU {per100:.1f} % "
                                    "of a core per 100 calls up"))
                    print(out[-1], flush=True)
                if args.only != "harness":
                    caller = sipp.Caller("bench_sipp").pause(int(args.sipp_call_s * 1000))
                    result: dict[str, Any] = {}

                    def load(n: int = n, caller: sipp.Caller = caller,
                             result: dict[str, Any] = result) -> None:
                        result["r"] = sipp.run(
                            caller.caller_hangs_up(), f"127.0.0.1:{stack.port}", tmp,
                            calls=n, concurrent=n,
                            timeout_s=int(args.sipp_call_s + n / 50 + 60))
                    t = threading.Thread(target=load, daemon=True)
                    t.start()
                    time.sleep(n / 50 + 2)  # sipp starts 50 calls/s
                    rate = args.rate or max(2.0, args.probes / 2)
                    busy0 = cpu_ticks()
                    probe, _, _ = harness_load(scenario, dial, args.probes, rate,
                                               min(args.duration_s, args.sipp_call_s - 5),
                                               tmp / f"s{n}", 19800, 41000)
                    busy1 = cpu_ticks()
                    busy = 100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
                    t.join(timeout=args.sipp_call_s + 120)
                    r = result.get("r")
                    ok = "sipp ok" if r is not None and r.ok else "sipp FAILED"
                    out.append(line(f"sipp+{args.probes}", n, probe,
                                    f"  ({n} sipp calls: {ok}; machine busy {busy:.0f} %)"))
                    print(out[-1], flush=True)
        finally:
            stack.stop()
    if args.out:
        args.out.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
