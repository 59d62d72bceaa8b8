"""How many baresip agent phones (tests/agent_phone.py) this machine runs at once.

    .venv/bin/python bench/bench_baresip_agents.py --levels 5,10,20,40 --talk-s 10

Per level of K phones, in a loopback-only network namespace (it re-executes itself under
``scripts/in-netns``): Kamailio as the agents' registrar (as in tests/test_front_agents.py),
K agents in a fresh store, K baresip started one after the other, each registered through
the front with digest and playing a 1500 Hz tone. Then one sipp process, from a
dispatcher-listed address as a worker would, calls all K at once (``-inf`` of the ids,
20 new calls/s), plays a 1000 Hz PCMU tone to each for ``--talk-s`` and hangs up.

``--kind sipp`` measures bench_acd.py's agents instead (one sipp UAS answering for all,
after 1 s, with -rtp_echo; their REGISTERs sent by a second sipp): the same columns, with
the UAS's CPU and PSS divided by K and no recordings.

Printed per level: phones registered; PSS per phone (MB, smaps_rollup); CPU per phone idle
and in a call (% of one core, schedstat of all their threads, over the window when all
calls are up); calls ok / failed (sipp); recordings holding the caller's tone (each phone's
sndfile dump, tests/tones.py); machine busy (all cores). Run it on demand, not from pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import bench_acd as acd  # noqa: E402
import bench_capacity as cap  # noqa: E402

from ivr.kamailio import Destination, KamailioConfig, KamailioProcess  # noqa: E402
from tests.agent_phone import AgentPhone, baresip_agent  # noqa: E402
from tests.test_kamailio import SCENARIOS  # noqa: E402
from tests.tone_caller import write_tone_pcap  # noqa: E402
from tests.tones import measure, write_tone_wav  # noqa: E402

NETNS_ENV = "BENCH_BARESIP_IN_NETNS"
FRONT_PORT = 5060
WORKER_PORT = 5602
CALLER_HZ, AGENT_HZ = 1000.0, 1500.0


def cpu_ns(pids: list[int]) -> int:
    return sum(sum(cap.thread_runtimes(p).values()) for p in pids)


def worker_scenario(pcap: Path) -> str:
    """tests/sipp/worker_calls_agent.xml, one agent per -inf line, each call on its own
    media port and playing ``pcap``."""
    text = (SCENARIOS / "worker_calls_agent.xml").read_text()
    text = text.replace("[service]", "[field0]").replace(
        "m=audio [media_port]", "m=audio [auto_media_port+4]")
    return text.replace("  <pause/>", f'  <nop><action><exec play_pcap_audio="{pcap}"/>'
                        "</action></nop>\n  <pause/>", 1)


def call_all(k: int, talk_s: float, work: Path, pids: list[int]) -> dict[str, float]:
    """Idle CPU of ``pids`` (the agents), then one sipp "worker" calling all K agents at
    once: their CPU over the window when all calls are up, and sipp's outcome."""
    out: dict[str, float] = {"pss_mb_per_phone": sum(cap.pss_kb(p) for p in pids) / 1024 / k}
    a0, t0 = cpu_ns(pids), time.monotonic()
    time.sleep(3)
    out["idle_cpu_pct_per_phone"] = 100 * (cpu_ns(pids) - a0) / 1e9 / (
        time.monotonic() - t0) / k
    ramp_s = k / 20
    caller = subprocess.Popen(
        ["sipp", f"127.0.0.1:{FRONT_PORT}", "-sf", str(work / "worker.xml"),
         "-inf", str(work / "agents.csv"), "-i", "127.0.0.1", "-p", str(WORKER_PORT),
         "-mp", "40000", "-m", str(k), "-l", str(k), "-r", "20",
         "-d", str(int(talk_s * 1000)), "-nostdin", "-timeout", f"{talk_s + 60:.0f}s",
         "-trace_stat", "-stf", str(work / "worker_stat.csv"), "-trace_err",
         "-error_file", str(work / "worker_errors.log")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(ramp_s + 1)  # all K calls up from here until talk_s after the first
    a0, m0, t0 = cpu_ns(pids), cap.machine_ticks(), time.monotonic()
    time.sleep(talk_s - ramp_s - 1.5)
    a1, m1 = cpu_ns(pids), cap.machine_ticks()
    out["call_cpu_pct_per_phone"] = 100 * (a1 - a0) / 1e9 / (time.monotonic() - t0) / k
    busy, idle = m1[0] - m0[0], m1[1] - m0[1]
    out["machine_busy_pct"] = 100 * busy / (busy + idle) if busy + idle else 0.0
    caller.wait(timeout=talk_s + 90)
    stats = cap.read_sipp_stats(work / "worker_stat.csv", work / "worker_errors.log")
    out["calls_ok"], out["calls_failed"] = stats.ok, stats.failed
    return out


def baresip_agents(k: int, talk_s: float, work: Path, front: KamailioProcess,
                   ids: list[str]) -> dict[str, float]:
    tone = write_tone_wav(work / "agent.wav", AGENT_HZ, talk_s + 60)
    with contextlib.ExitStack() as phones_cm:
        phones: list[AgentPhone] = []
        for i, a in enumerate(ids):
            phone = phones_cm.enter_context(baresip_agent(
                work, FRONT_PORT, a, acd.password_of(a), name=a, play=tone,
                sip_trace=False, rtp_ports=(30000 + 10 * i, 30009 + 10 * i),
                sip_port_from=18700 + 200 * (i // 90)))  # SIP and SIP+1 each
            phone.wait_registered(30)
            phones.append(phone)
        out: dict[str, float] = {"registered": sum(1 for a in ids if front.agent_contacts(a))}
        out.update(call_all(k, talk_s, work, [p.proc.pid for p in phones]))
        good = 0
        for p in phones:
            with contextlib.suppress(AssertionError):
                p.wait_ended(10)  # its WAV dump is complete once the call closed
            recs = p.recordings()
            with contextlib.suppress(wave.Error, EOFError):
                if recs and measure(recs[-1], (CALLER_HZ, AGENT_HZ), skip_s=0.5)[0].holds(
                        CALLER_HZ, absent_hz=AGENT_HZ):
                    good += 1
        out["recordings_with_tone"] = good
    return out


def sipp_agents(k: int, talk_s: float, work: Path, front: KamailioProcess,
                ids: list[str]) -> dict[str, float]:
    """bench_acd.py's agents: one sipp UAS for all (answer after 1 s, -rtp_echo), their
    REGISTERs sent by a second sipp."""
    (work / "agent_uas.xml").write_text(acd.render(
        "agent_uas.xml.in", answer_ms=1000, bye_timeout_ms=int((talk_s + 60) * 1000)))
    procs = cap.Processes()
    try:
        uas = procs.spawn(
            ["sipp", "-sf", str(work / "agent_uas.xml"), "-i", "127.0.0.1",
             "-p", str(acd.AGENT_UAS_PORT), "-mi", "127.0.0.1", "-mp", str(acd.AGENT_MEDIA_PORT),
             "-rtp_echo", "-nostdin", "-max_recv_loops", "1000"], work / "uas.out", cwd=work)
        (work / "reg.xml").write_text(acd.render(
            "agent_register.xml.in", domain=acd.DOMAIN, uas_port=acd.AGENT_UAS_PORT,
            expires_s=3600))
        subprocess.run(
            ["sipp", f"127.0.0.1:{FRONT_PORT}", "-sf", str(work / "reg.xml"), "-inf",
             str(work / "agents.csv"), "-i", "127.0.0.1", "-p", str(acd.AGENT_REG_PORT),
             "-m", str(k), "-r", "50", "-l", "50", "-nostdin", "-timeout", "60s"],
            cwd=work, capture_output=True, timeout=120, check=False)
        out: dict[str, float] = {"registered": sum(1 for a in ids if front.agent_contacts(a))}
        out.update(call_all(k, talk_s, work, [uas.pid]))
        return out
    finally:
        procs.stop_all()


def run_level(kind: str, k: int, talk_s: float, work: Path) -> dict[str, float]:
    if talk_s - k / 20 - 1.5 < 2:
        raise SystemExit(f"{k} calls at 20/s take {k / 20:.0f} s to start: give --talk-s "
                         f"{k / 20 + 4:.0f} or more for a steady window")
    ids = acd.agent_ids(k)
    acd.add_agents(work / "ivr.sqlite3", ids)
    acd.write_agents_csv(work / "agents.csv", ids)
    write_tone_pcap(work / "caller.pcap", CALLER_HZ, talk_s)
    (work / "worker.xml").write_text(worker_scenario(work / "caller.pcap"))
    front = KamailioProcess(KamailioConfig(
        port=FRONT_PORT, run_dir=work / "front", store_path=work / "ivr.sqlite3",
        agent_domain=acd.DOMAIN, auth_realm=acd.REALM, log_level="notice",
        destinations=[Destination(f"sip:127.0.0.1:{WORKER_PORT}", 4, disabled=True)]))
    front.start()
    try:
        run = baresip_agents if kind == "baresip" else sipp_agents
        return {"phones": k, **run(k, talk_s, work, front, ids)}
    finally:
        front.stop()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="5,10,20,40")
    ap.add_argument("--talk-s", type=float, default=10.0)
    ap.add_argument("--kind", choices=("baresip", "sipp"), default="baresip",
                    help="baresip phones, or bench_acd.py's sipp agents (one UAS for all)")
    args = ap.parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":
        script = ROOT / "scripts" / "in-netns"
        os.execve(str(script), [str(script), sys.executable, str(Path(__file__).resolve()),
                                *argv], {**os.environ, NETNS_ENV: "1"})
    cols = ["phones", "registered", "pss_mb_per_phone", "idle_cpu_pct_per_phone",
            "call_cpu_pct_per_phone", "calls_ok", "calls_failed", "recordings_with_tone",
            "machine_busy_pct"]
    print(f"{args.kind} agents, {args.talk_s:g} s calls")
    print("  ".join(cols))
    for k in [int(x) for x in args.levels.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"bench-{args.kind}-agents-{k}-") as d:
            row = run_level(args.kind, k, args.talk_s, Path(d))
        print("  ".join(f"{row.get(c, float('nan')):>{len(c)}.2f}" for c in cols), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
