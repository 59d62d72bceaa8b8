"""The long hardening checks, run on demand (never from pytest): a call flood from one source
while a real caller calls, and ``kill -9`` of each process of the stack with calls up.

    .venv/bin/python bench/bench_hardening.py                  # every scenario, working tree
    .venv/bin/python bench/bench_hardening.py --commit d90c6bb # the same against a commit
    .venv/bin/python bench/bench_hardening.py --only flood,kill-worker

It re-executes itself in a loopback-only network namespace (``scripts/in-netns``), starts
``ivr run`` (Kamailio on 127.0.0.1:5060, 2 workers of 4 calls, no growth) with a fresh var dir
per scenario, and drives it with sipp from 127.0.0.2 (the real caller) and 127.0.0.3 (the
flood). Needs sipp (sip-tester) and kamailio: ``scripts/setup --bench``. About 4 minutes.

Scenarios and what they print:

* ``flood``: 200 calls of 15 s at 40 calls/s from one source, and meanwhile 6 calls of 3 s
  from another: how many of each were answered, and the blocked-call records by reason.
* ``kill-worker``, ``kill-zygote``, ``kill-kamailio``: 4 calls up (12 s each; the worker
  case waits for the IVR's BYE instead), then ``kill -9`` of that process: how many of the
  calls ended well (for the worker: how many callers were sent a BYE), the seconds until a
  new call is answered again, and the processes of the stack left after it is stopped.
* ``kill-controller``: 4 calls of 6 s, and ``kill -9`` of the controller at 3 s: whether the
  calls end normally, how long until every process of the stack is gone by itself, whether
  the next start on the same var dir succeeds, and how the calls are recorded then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sipp import SIPP, Caller  # noqa: E402  (the tests' scenario builder)

NETNS_ENV = "BENCH_HARDENING_IN_NETNS"
FRONT = "127.0.0.1:5060"
REAL_CALLER = "127.0.0.2"
FLOOD_SOURCE = "127.0.0.3"
PROBE_SOURCE = "127.0.0.4"  # its own address: the held calls count against REAL_CALLER's
SCENARIOS = ("flood", "kill-worker", "kill-zygote", "kill-kamailio", "kill-controller")


@dataclass
class SippRun:
    proc: subprocess.Popen[str]
    name: str

    def finish(self, timeout_s: float = 60) -> tuple[int, int]:
        """(successful, failed) calls from sipp's final statistics."""
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
        bad = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
        return (int(ok.group(1)) if ok else 0, int(bad.group(1)) if bad else 0)


class Bench:
    def __init__(self, src: Path, work: Path, extra_env: dict[str, str]) -> None:
        self.src = src
        self.work = work
        self.extra_env = extra_env
        self._port = 16000

    def sipp(self, caller: Caller, source: str, calls: int, rate: float,
             timeout_s: int) -> SippRun:
        scenario = self.work / f"{caller.name}-{self._port}.xml"
        scenario.write_text(caller.render())
        self._port += 4
        assert SIPP is not None
        cmd = [SIPP, FRONT, "-sf", str(scenario), "-i", source, "-p", str(self._port),
               "-mp", str(20000 + self._port), "-m", str(calls), "-l", str(calls),
               "-r", str(rate), "-timeout", f"{timeout_s}s", "-nostdin",
               "-max_recv_loops", "1000"]
        proc = subprocess.Popen(cmd, cwd=self.work, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        return SippRun(proc, caller.name)

    def start_stack(self, var: Path) -> tuple[subprocess.Popen[str], Path]:
        """``ivr run`` on ``var``; RuntimeError (naming its log) if it does not get ready."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env.update({
            "IVR_SIP_PORT": "5060", "IVR_SIP_BIND_ADDRESS": "127.0.0.1",
            "IVR_POOL_WORKERS": "2", "IVR_POOL_MAX_WORKERS": "2",
            "IVR_POOL_MIN_IDLE_WORKERS": "0", "IVR_POOL_RESTART_DELAY_S": "0.2",
            "IVR_PATHS_VAR_DIR": str(var), "IVR_PATHS_PROMPTS_DIR": str(ROOT / "prompts"),
            "IVR_PATHS_FLOW": str(ROOT / "bench" / "flows" / "bench.yaml"),
            "IVR_WORKER_DRAIN_TIMEOUT_S": "5", "IVR_LOG_FORMAT": "json",
            "IVR_FRONT_PROBE_INTERVAL_S": "1",
            **self.extra_env,
        })
        var.mkdir(parents=True, exist_ok=True)
        log = var.parent / f"{var.name}.log"
        with open(log, "a") as fh:
            seen = fh.tell()  # a second start appends: only its own lines count
            proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "run"], cwd=self.src,
                                    env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: '"controller.ready"' in log.read_text()[seen:]
                 or proc.poll() is not None, 60)
        if proc.poll() is not None:
            raise RuntimeError(f"the stack did not start; see {log}")
        return proc, log

    def probe_until_answered(self, limit_s: float) -> float | None:
        """Seconds until a fresh call (from its own address) is answered, or None."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            run = self.sipp(Caller("probe").pause(300).caller_hangs_up(), PROBE_SOURCE, 1, 1, 5)
            ok, _ = run.finish(15)
            if ok:
                return time.monotonic() - started
            time.sleep(0.5)
        return None


def wait_for(pred: object, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def stack_processes(var: Path) -> list[str]:
    """``pid name`` of every process whose environment names this var dir."""
    needle = f"IVR_PATHS_VAR_DIR={var}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                out.append(f"{entry.name} {(entry / 'comm').read_text().strip()}")
        except OSError:
            continue
    return out


def log_pid(log: Path, event: str, key: str = "pid") -> int | None:
    pid = None
    for line in log.read_text().splitlines():
        if f'"{event}"' in line:
            try:
                pid = int(json.loads(line)[key])
            except (ValueError, KeyError, TypeError):
                continue
    return pid


def busiest_worker(var: Path) -> tuple[str, int] | None:
    """The worker with the most calls up, and how many."""
    con = sqlite3.connect(var / "ivr.sqlite3")
    try:
        row = con.execute("SELECT worker, count(*) FROM calls WHERE ended_at IS NULL "
                          "GROUP BY worker ORDER BY 2 DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return (str(row[0]), int(row[1])) if row else None


def worker_pid(log: Path, name: str) -> int | None:
    pid = None
    for line in log.read_text().splitlines():
        if '"pool.worker_up"' in line and f'"worker": "{name}"' in line:
            pid = int(json.loads(line)["pid"])
    return pid


def end_reasons(var: Path) -> dict[str, int]:
    db = var / "ivr.sqlite3"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT coalesce(end_reason, 'open'), count(*) FROM calls "
                           "GROUP BY 1").fetchall()
    finally:
        con.close()
    return {r: n for r, n in rows}


def blocked(var: Path) -> dict[str, int] | None:
    con = sqlite3.connect(var / "ivr.sqlite3")
    try:
        rows = con.execute("SELECT reason, count(*) FROM blocked_calls GROUP BY 1").fetchall()
    except sqlite3.Error:
        return None  # no such table in this version
    finally:
        con.close()
    return {r: n for r, n in rows}


def stop(proc: subprocess.Popen[str], var: Path) -> list[str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    wait_for(lambda: not stack_processes(var), 10)
    left = stack_processes(var)
    for entry in left:  # ours (they carry this run's var dir): clear them for the next scenario
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.split()[0]), signal.SIGKILL)
    return left


def flood(b: Bench) -> None:
    var = b.work / "var-flood"
    proc, _log = b.start_stack(var)
    try:
        attack = b.sipp(Caller("flood").pause(15000).caller_hangs_up(), FLOOD_SOURCE, 200, 40,
                        30)
        time.sleep(2.0)
        real = b.sipp(Caller("real").pause(3000).caller_hangs_up(), REAL_CALLER, 6, 1, 30)
        real_ok, real_bad = real.finish()
        flood_ok, flood_bad = attack.finish()
        time.sleep(1.5)  # the front writes blocked calls once a second
        print(f"flood: real caller {real_ok}/6 answered ({real_bad} failed); flood "
              f"{flood_ok}/200 answered, {flood_bad} refused or failed")
        print(f"flood: blocked-call records by reason: {blocked(var)}")
    finally:
        print(f"flood: processes left after stop: {stop(proc, var) or 'none'}")


def kill(b: Bench, target: str) -> None:
    var = b.work / f"var-kill-{target}"
    proc, log = b.start_stack(var)
    left: list[str] = []
    try:
        if target == "worker":
            held = Caller("held").ivr_hangs_up(20000)  # a caller waiting for the IVR's BYE
        elif target == "controller":
            # calls that end normally (at 6 s) while the controller is away, inside the
            # workers' drain (5 s from the kill at 3 s): their records must say so
            held = Caller("held").pause(6000).caller_hangs_up()
        else:
            held = Caller("held").pause(12000).caller_hangs_up()
        calls = b.sipp(held, REAL_CALLER, 4, 10, 40)
        time.sleep(3.0)
        on_worker = busiest_worker(var)
        pid = {
            "controller": proc.pid,
            "zygote": log_pid(log, "zygote.ready"),
            "kamailio": log_pid(log, "front.ready"),
            "worker": worker_pid(log, on_worker[0]) if on_worker else None,
        }[target]
        if pid is None:
            print(f"kill-{target}: no pid found in {log}")
            return
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        if target == "controller":
            gone = wait_for(lambda: not stack_processes(var), 60)
            took = time.monotonic() - killed_at
            ok, bad = calls.finish()
            print(f"kill-controller: calls ended well {ok}/4 ({bad} failed); stack processes "
                  + (f"all gone after {took:.1f} s" if gone else
                     f"still running after 60 s: {stack_processes(var)}"))
            try:
                proc2, log2 = b.start_stack(var)
            except RuntimeError as exc:
                print(f"kill-controller: the next start on the same var dir failed: {exc}")
                left = stop(proc, var)  # what the killed stack left running, cleared
                return
            print("kill-controller: the next start on the same var dir: ready")
            left = stop(proc2, var)
            return
        recovered = b.probe_until_answered(30)
        ok, bad = calls.finish()
        rec = f"{recovered:.1f} s" if recovered is not None else "not within 30 s"
        if target == "worker":
            # only the killed worker's callers can get a BYE (the others wait and time out)
            what = f"of its {on_worker[1] if on_worker else '?'} callers, sent a BYE: {ok}"
        else:
            what = f"calls ended well {ok}/4 ({bad} failed)"
        print(f"kill-{target}: {what}; a new call answered after {rec}")
    finally:
        if proc.poll() is None or target != "controller":
            left = stop(proc, var) or left
        print(f"kill-{target}: processes left after stop: {left or 'none'}; calls recorded "
              f"as {end_reasons(var)}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commit", help="run the stack from this commit (git archive)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, stores)")
    ap.add_argument("--env", action="append", default=[], metavar="IVR_X=V",
                    help="a setting for the stack (repeatable), e.g. "
                    "IVR_FRONT_MAX_CALLS_PER_SOURCE=4")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated, of {', '.join(SCENARIOS)}")
    args = ap.parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":
        script = ROOT / "scripts" / "in-netns"
        os.execve(str(script), [str(script), sys.executable, str(Path(__file__).resolve()),
                                *argv], {**os.environ, NETNS_ENV: "1"})
    if SIPP is None:
        print("bench_hardening: sipp is missing (scripts/setup --bench)", file=sys.stderr)
        return 2
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SCENARIOS))
    if unknown:
        print(f"bench_hardening: unknown scenario(s) {unknown}", file=sys.stderr)
        return 2
    extra = dict(item.split("=", 1) for item in args.env)
    tmp = tempfile.mkdtemp(prefix="bench-hardening-")
    try:
        work = Path(tmp)
        src = ROOT
        if args.commit:
            src = work / "src"
            src.mkdir()
            tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar",
                                  args.commit], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(src)], input=tar.stdout, check=True)
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                               args.commit or "HEAD"], capture_output=True, text=True)
        print(f"bench_hardening: stack from {head.stdout.strip()} ({src})")
        b = Bench(src, work, extra)
        for name in wanted:
            if name == "flood":
                flood(b)
            else:
                kill(b, name.removeprefix("kill-"))
    finally:
        if args.keep:
            print(f"bench_hardening: work dir {tmp} kept")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
