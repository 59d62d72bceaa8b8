"""Bridged calls through the ACD against the same callers on the IVR-only path (issue 17).

    .venv/bin/python bench/bench_acd.py --agents 50 --levels 20,50 --out acd.json

Options: ``--agents N`` (default: the largest level), ``--answer-ms 1000``, ``--call-s 30``
(the caller's whole call: queue wait + talk), ``--rate 10``, ``--only acd|ivr``, ``--keep``,
``--core`` (also run bench/bench_acd_core.py: the core's decisions/s alone), and
bench_capacity's ``--legs``, ``--spare``, ``--set``, ``--wait-quiet``. Needs what
bench_capacity needs (``scripts/setup --bench``); run it on demand, never from pytest.

Per level of M concurrent callers, as bench_capacity does it (it re-executes itself under
``scripts/in-netns``, one sipp caller process, RTP to the callers captured and dropped at
lo's ingress, CPU from schedstat, PSS from smaps_rollup; see its docstring):

* **acd**: ``ivr run`` with ``bench/flows/bench_acd.yaml`` (straight into queue ``bench``)
  and an ACD file made here with that one queue and N agents ``a0001``... Before the stack
  starts, the agents' SIP credentials go into its store (as ``ivr agent add`` does). The
  agents are two sipp processes, lighter than N baresip (see the README's measure):
  ``agent_register.xml`` REGISTERs every agent through the front with digest, all with the
  Contact of ``agent_uas.xml``, one UAS that answers every agent's INVITE after
  ``--answer-ms`` with ``-rtp_echo`` (audio both ways) and logs each INVITE's arrival.
  The bench checks Kamailio holds one contact per agent (``kamcmd ul.lookup``), then calls
  :func:`make_agents_ready` and places the calls. RTP to the agents is captured too
  (gaps per worker source). Offer latency (agent free -> INVITE at the agent's phone) is
  the UAS's arrival log against the queue log's RING rows.
* **ivr**: the same callers against ``ivr run`` with bench_capacity's IVR-only flow.

Printed per level and side: calls held / failed, RTP gaps > 30 ms to the callers (and to
the agents), offer latency p50/p99, CPU % of a core per 100 calls, PSS MB per call.

Offer latency: from the queue log's RING row of a call (the ACD's decision: an agent free
for a waiting call, or a call for a free agent) to its INVITE at the agent's phone (the
UAS logs the ``X-Call-Id`` header the worker adds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import bench_capacity as cap  # noqa: E402

from ivr.agent_credentials import AgentSip, make_hashes  # noqa: E402
from ivr.store import CallStore  # noqa: E402

NETNS_ENV = "BENCH_ACD_IN_NETNS"
QUEUE = "bench"
DOMAIN = "127.0.0.1"  # the stack's agent domain: front.agent_domain unset = sip.bind_address
REALM = "callcenter"  # front.auth_realm's default
AGENT_UAS_PORT = 25070
AGENT_MEDIA_PORT = 32000
AGENT_REG_PORT = 25080
AGENT_FLOW = BENCH / "flows" / "bench_acd.yaml"


def agent_ids(n: int) -> list[str]:
    return [f"a{i:04d}" for i in range(1, n + 1)]


def password_of(agent_id: str) -> str:
    return f"bench-{agent_id}-Secret"


def write_acd(path: Path, ids: list[str], ring_timeout_s: int = 15) -> Path:
    """An ACD file: queue ``bench`` (longest-idle, no wrap-up, no announcements) and the
    agents, each in it at proficiency 5."""
    lines = ["queues:", f"  {QUEUE}:", "    strategy: longest-idle",
             f"    ring_timeout_s: {ring_timeout_s}", "    wrapup_s: 0",
             "    announce_every_s: 0", "    when_no_agents: wait", "agents:"]
    lines += [f'  "{a}": {{name: Bench Agent {a}, queues: {{{QUEUE}: 5}}}}' for a in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def add_agents(db: Path, ids: list[str]) -> None:
    """The agents' SIP credentials (HA1 only), as ``ivr agent add`` stores them."""
    db.parent.mkdir(parents=True, exist_ok=True)
    store = CallStore(db)
    try:
        now = time.time()
        for a in ids:
            ha1, ha1b = make_hashes(a, REALM, DOMAIN, password_of(a))
            store.add_agent_sip(AgentSip(a, f"Bench Agent {a}", REALM, ha1, ha1b,
                                         ((QUEUE, 5),), now, now))
    finally:
        store.close()


def write_agents_csv(path: Path, ids: list[str]) -> Path:
    """sipp's -inf file for agent_register.xml: the id, then the whole [authentication]
    keyword (sipp expands no keyword inside another, but a field can hold one)."""
    path.write_text("SEQUENTIAL\n" + "".join(
        f"{a};[authentication username={a} password={password_of(a)}]\n" for a in ids))
    return path


def render(name: str, **values: object) -> str:
    text = (BENCH / "sipp" / name).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key.upper()}__", str(value))
    if "__" in re.sub(r"<!--.*?-->", "", text, flags=re.S):
        raise ValueError(f"{name}: a placeholder was left unfilled")
    return text


def contacts(run_dir: Path, ids: list[str]) -> dict[str, list[str]]:
    """Each agent's registered contacts in the stack's Kamailio (``ul.lookup``)."""
    ctl = run_dir / "kamailio" / "kamailio.ctl"
    out: dict[str, list[str]] = {}
    for a in ids:
        r = subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "ul.lookup", "location", f"s:{a}"],
                           capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        out[a] = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines()
                  if line.strip().startswith("Address:")]
    return out


def make_agents_ready(stack: dict[str, str], ids: list[str]) -> None:
    """Set every agent ``ready`` in the running stack (``stack``: its environment), as
    ``ivr agent state ID ready`` does, over the controller's socket."""
    sys.path.insert(0, str(ROOT))
    from ivr.ops import OpsError, request

    socket_path = Path(stack["IVR_PATHS_VAR_DIR"]) / "run" / "controller.sock"
    for agent_id in ids:
        try:
            request(socket_path, "agent.state", {"agent_id": agent_id, "state": "ready"})
        except OpsError as exc:
            raise NotImplementedError(f"agent {agent_id} cannot go ready: {exc}") from exc


def ring_times(db: Path) -> dict[str, float]:
    """Per call, when the ACD rang an agent for it (its RING row: the moment an agent was
    free for a waiting call, or the call came to a free agent), from the queue log."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT call_id, at FROM queue_log WHERE event = 'RING' "
                            "ORDER BY id").fetchall()
    out: dict[str, float] = {}
    for call_id, at in rows:
        out.setdefault(call_id, at)  # the first ring of each call
    return out


def invite_times(log: Path) -> list[tuple[float, str]]:
    """(epoch s, our call id) of each INVITE the agents' UAS received (its -trace_logs)."""
    out = []
    if log.exists():
        for m in re.finditer(r"invite (\d+)(?:\.0+)? (\d+)(?:\.0+)? (\S+) (\S+)",
                             log.read_text()):
            out.append((int(m.group(1)) + int(m.group(2)) / 1e6, m.group(4)))
    return out


def offer_latency_ms(rings: dict[str, float], invites: list[tuple[float, str]]) -> list[float]:
    """For each call's first INVITE at an agent's phone, the time since the ACD rang."""
    seen: set[str] = set()
    out = []
    for t, call_id in sorted(invites):
        if call_id in rings and call_id not in seen:
            seen.add(call_id)
            out.append(1000 * (t - rings[call_id]))
    return out


def gaps_by_source(pcap: Path, dst_port: int, gap_s: float = cap.GAP_S) -> dict[str, float]:
    """RTP to ``dst_port`` grouped by source (one per worker leg): streams, packets, share
    of inter-arrival gaps over ``gap_s`` (within each stream), worst gap."""
    times: dict[tuple[bytes, int], list[float]] = {}
    for ts, frame in cap.read_pcap(pcap) if pcap.exists() else []:
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        udp = 14 + (frame[14] & 0x0F) * 4
        if (frame[udp + 2] << 8 | frame[udp + 3]) != dst_port:
            continue
        src = (frame[26:30], frame[udp] << 8 | frame[udp + 1])
        times.setdefault(src, []).append(ts)
    gaps = [b - a for ts in times.values() for a, b in zip(ts, ts[1:], strict=False)]
    return {"streams": len(times), "packets": sum(len(t) for t in times.values()),
            "gaps_over_pct": 100 * sum(g > gap_s for g in gaps) / len(gaps) if gaps else 0.0,
            "worst_gap_ms": 1000 * max(gaps, default=0.0)}


@dataclass
class AgentSide:
    agents: int
    registered: int = 0  # with any contact in Kamailio's location table
    contacts_ok: int = 0  # with exactly the agents' UAS as their one contact
    ready: bool = False
    not_ready_why: str = ""
    invites: int = 0
    offer_p50_ms: float | None = None
    offer_p99_ms: float | None = None
    rtp_to_agents: dict[str, float] = field(default_factory=dict)


class AcdBench(cap.Bench):
    """bench_capacity's Bench, with agents registered before the calls (acd side)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work)
        self.ids = agent_ids(args.agents)
        self.agent_side: AgentSide | None = None
        self.acd = False
        self._agent_capture: subprocess.Popen[bytes] | None = None
        self.agent_procs = cap.Processes()  # apart: the stack sweep kills all bench.procs saw

    def before_start(self, work: Path, env: dict[str, str]) -> None:
        if not self.acd:
            return
        add_agents(Path(env["IVR_PATHS_VAR_DIR"]) / "ivr.sqlite3", self.ids)

    def stack_ready(self, res: cap.RunResult, work: Path, env: dict[str, str]) -> bool:
        if not self.acd:
            return True
        side = self.agent_side = AgentSide(len(self.ids))
        self._start_agents(work, side)
        found = contacts(Path(env["IVR_PATHS_VAR_DIR"]) / "run", self.ids)
        side.registered = sum(1 for c in found.values() if c)
        want = f"sip:{{}}@127.0.0.1:{AGENT_UAS_PORT}"
        side.contacts_ok = sum(1 for a, c in found.items() if c == [want.format(a)])
        print(f"  agents: {side.registered}/{side.agents} registered, {side.contacts_ok} with "
              "their contact in Kamailio's location table")
        if side.contacts_ok != side.agents:
            res.notes.append(f"only {side.contacts_ok} of {side.agents} agents registered")
            return False
        try:
            make_agents_ready(env, self.ids)
        except NotImplementedError as exc:
            side.not_ready_why = str(exc)
            res.notes.append(f"acd calls not run: {exc}")
            return False
        side.ready = True
        self._agent_capture = self.agent_procs.spawn(
            ["tcpdump", "-i", "lo", "-n", "-s", "64", "-w", str(work / "to-agents.pcap"),
             f"udp and dst port {AGENT_MEDIA_PORT}"], work / "tcpdump-agents.log")
        return True

    def _start_agents(self, work: Path, side: AgentSide) -> None:
        bye_ms = int((self.args.call_s + 120) * 1000)
        (work / "agent_uas.xml").write_text(render(
            "agent_uas.xml.in", answer_ms=self.args.answer_ms, bye_timeout_ms=bye_ms))
        self.agent_procs.spawn(
            ["sipp", "-sf", str(work / "agent_uas.xml"), "-i", "127.0.0.1",
             "-p", str(AGENT_UAS_PORT), "-mi", "127.0.0.1", "-mp", str(AGENT_MEDIA_PORT),
             "-rtp_echo", "-nostdin", "-max_recv_loops", "1000", "-trace_logs", "-log_file",
             str(work / "agent_invites.log"), "-trace_err", "-error_file",
             str(work / "agent_uas_errors.log")], work / "agent_uas.out", cwd=work)
        write_agents_csv(work / "agents.csv", self.ids)
        (work / "agent_register.xml").write_text(render(
            "agent_register.xml.in", domain=DOMAIN, uas_port=AGENT_UAS_PORT,
            expires_s=3600))
        reg = subprocess.run(
            ["sipp", f"127.0.0.1:{cap.STACK_SIP_PORT}", "-sf", str(work / "agent_register.xml"),
             "-inf", str(work / "agents.csv"), "-i", "127.0.0.1", "-p", str(AGENT_REG_PORT),
             "-m", str(len(self.ids)), "-r", "50", "-l", "50", "-nostdin", "-timeout", "60s",
             "-trace_stat", "-stf", str(work / "register_stat.csv"), "-trace_err",
             "-error_file", str(work / "register_errors.log")],
            cwd=work, capture_output=True, text=True, timeout=120)
        if reg.returncode != 0:  # 1: some REGISTER failed (register_errors.log says why)
            print(f"  agent REGISTERs: sipp exited {reg.returncode}: {reg.stderr[-400:]}")

    def run_side(self, calls: int, acd: bool) -> tuple[cap.RunResult, AgentSide | None]:
        self.acd = acd
        self.flow = AGENT_FLOW if acd else BENCH / "flows" / "bench.yaml"
        self.legs_per_caller = 2 if acd else 1
        self.extra_env = {"IVR_PATHS_ACD": str(write_acd(self.work / "acd.yaml", self.ids))
                          } if acd else {}
        self.agent_side = None
        res = self.run_stack(calls)
        res.side = "acd" if acd else "ivr"
        side = self.agent_side
        if acd and side is not None and side.ready:
            work = self.work / f"stack-{calls}"
            if self._agent_capture is not None:
                self.agent_procs.stop(self._agent_capture, signal.SIGINT)
            side.rtp_to_agents = gaps_by_source(work / "to-agents.pcap", AGENT_MEDIA_PORT)
            inv = invite_times(work / "agent_invites.log")
            side.invites = len(inv)
            lat = offer_latency_ms(ring_times(work / "var" / "ivr.sqlite3"), inv)
            if lat:
                side.offer_p50_ms = statistics.median(lat)
                side.offer_p99_ms = sorted(lat)[min(len(lat) - 1, int(0.99 * len(lat)))]
        self.agent_procs.stop_all()  # the agents' sipp UAS and the capture of their RTP
        return res, side


def fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.1f}{unit}"


def print_level(calls: int, rows: list[tuple[cap.RunResult, AgentSide | None]]) -> None:
    print(f"\n== {calls} callers ==")
    print(f"{'':28}" + "".join(f"{r.side:>16}" for r, _ in rows))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:28}" + "".join(f"{v:>16}" for v in values))

    line("calls held ok / failed", [f"{r.sipp.ok}/{r.sipp.failed}" for r, _ in rows])
    line("RTP to callers gaps>30ms %", [fmt(100 * r.rtp.gaps_over / r.rtp.gaps)
                                        if r.rtp.gaps else "-" for r, _ in rows])
    line("RTP to agents gaps>30ms %", [fmt(s.rtp_to_agents.get("gaps_over_pct"))
                                       if s and s.rtp_to_agents.get("streams") else "-"
                                       for _, s in rows])
    line("offer latency p50/p99 ms", [f"{fmt(s.offer_p50_ms)}/{fmt(s.offer_p99_ms)}"
                                      if s else "-" for _, s in rows])
    line("CPU % core per 100 calls", [fmt(r.cpu_per_100) for r, _ in rows])
    line("PSS MB per call", [f"{r.pss_mb_per_call:.2f}" if r.pss_mb_per_call else "-"
                             for r, _ in rows])
    line("agents registered", [f"{s.contacts_ok}/{s.agents}" if s else "-" for _, s in rows])
    for r, _ in rows:
        for note in r.notes:
            print(f"  {r.side}: {note}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="20,50,100,200", help="concurrent callers per level")
    ap.add_argument("--agents", type=int, default=0, help="agents (default: largest level)")
    ap.add_argument("--answer-ms", type=int, default=1000, help="agents answer after, ms")
    ap.add_argument("--legs", type=int, default=4, choices=(1, 2, 3, 4))
    ap.add_argument("--spare", type=int, default=4)
    ap.add_argument("--pump-timeout-ms", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="IVR_SECTION_FIELD=VALUE")
    ap.add_argument("--call-s", type=float, default=30.0, help="caller's call, seconds")
    ap.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    ap.add_argument("--only", choices=("acd", "ivr"))
    ap.add_argument("--core", action="store_true", help="also run bench_acd_core.py")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--wait-quiet", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.commit = None  # bench_capacity's Bench reads it: the working tree is measured
    args.settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("IVR_"):
            ap.error(f"--set {item!r}: expected IVR_SECTION_FIELD=VALUE")
        args.settings[name] = value
    args.level_list = [int(x) for x in args.levels.split(",") if x.strip()]
    if not args.level_list or min(args.level_list) < 1 or max(args.level_list) > 1000:
        ap.error("--levels: 1 to 1000 callers each")
    args.agents = args.agents or max(args.level_list)
    if not 1 <= args.agents <= 2000:
        ap.error("--agents: 1 to 2000")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":
        script = ROOT / "scripts" / "in-netns"
        os.execve(str(script), [str(script), sys.executable, str(Path(__file__).resolve()),
                                *argv], {**os.environ, NETNS_ENV: "1"})
    if cap.net_devices() != ["lo"]:
        print("bench_acd: not in a loopback-only network namespace", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, cap._on_signal)
    work = Path(tempfile.mkdtemp(prefix="bench-acd-"))
    print(f"bench_acd: levels {args.levels}, {args.agents} agents answering after "
          f"{args.answer_ms} ms, {args.call_s:.0f} s calls at {args.rate:g}/s; work dir {work}")
    bench = AcdBench(args, work)
    out: list[dict[str, Any]] = []
    code = 0
    try:
        bench.prepare()
        for calls in args.level_list:
            rows = []
            for acd in (True, False):
                if args.only in (None, "acd" if acd else "ivr"):
                    rows.append(bench.run_side(calls, acd))
                    time.sleep(2)
            print_level(calls, rows)
            out += [{"calls": calls, **asdict(r), "agents": asdict(s) if s else None}
                    for r, s in rows]
        if args.core:
            subprocess.run([sys.executable, str(BENCH / "bench_acd_core.py")], check=False)
        if args.out:
            args.out.write_text(json.dumps(out, indent=2, default=str))
    except (KeyboardInterrupt, cap.Stopped):
        code = 130
    finally:
        bench.close()
        bench.agent_procs.stop_all()
        if not args.keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
