"""``ivr-harness``: check and run scripted calls against the stack.

    ivr-harness check FILE|DIR...
    ivr-harness run FILE|DIR... [--config FILE | --db PATH] [--prompts DIR]
                    [--junit FILE] [--json FILE]

``run`` prints each step with its timing and exits 1 when a scenario failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .load import LoadPlan, LoadStats
from .print_cache import default_cache_dir
from .prompt_index import PromptIndex, PromptSetError, Transcriber
from .scenario import Scenario, ScenarioError, check_prompts, load_scenario, scenario_files

if TYPE_CHECKING:
    from rich.table import Table

    from .pool import Caller


def _load_all(targets: list[str]) -> tuple[list[Scenario], list[str]]:
    scenarios, problems = [], []
    for t in targets:
        try:
            files = scenario_files(Path(t))
        except ScenarioError as exc:
            problems.append(str(exc))
            continue
        for f in files:
            try:
                scenarios.append(load_scenario(f))
            except ScenarioError as exc:
                problems.append(str(exc))
    return scenarios, problems


def _prompts_dir(args: argparse.Namespace) -> Path:
    """--prompts, else the stack's (its settings file, or $IVR_CONFIG / IVR_* / built-ins,
    as `ivr` reads them: the shipped sets by default)."""
    if args.prompts:
        return Path(args.prompts)
    from ..config import load_settings

    config = getattr(args, "config", None)
    return Path(load_settings(Path(config) if config else None).paths.prompts_dir)


def cmd_check(args: argparse.Namespace) -> int:
    scenarios, problems = _load_all(args.targets)
    try:
        index = PromptIndex.load(_prompts_dir(args), default_cache_dir())
    except PromptSetError as exc:
        problems.append(str(exc))
    else:
        known = {p.key for p in index.prompts}
        for s in scenarios:
            problems.extend(check_prompts(s, known, index.sets()))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 2
    for s in scenarios:
        print(f"{s.path}: ok ({len(s.steps)} steps)")
    return 0


def _records(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .records import CallRecords

    if args.db:
        return CallRecords(Path(args.db))
    if args.config:
        from ..config import load_settings
        return CallRecords(load_settings(Path(args.config)).db_path)
    return None


def _print_step(res: object) -> None:
    from .call import StepResult

    assert isinstance(res, StepResult)
    mark = "ok  " if res.ok else "FAIL"
    print(f"  {mark} {res.label:42} +{res.at_ms:7.0f} ms {res.duration_ms:6.0f} ms  "
          f"{res.detail}", flush=True)


def _print_result(s: Scenario, r: object) -> None:
    from .call import CallResult

    assert isinstance(r, CallResult)
    timing = (f"post-dial {r.post_dial_delay_ms} ms, first audio {r.time_to_first_audio_ms} "
              f"ms, key->prompt {r.key_to_prompt_ms} ms, loss {r.loss_ratio:.1%}, jitter "
              f"{r.jitter_ms} ms, MOS {r.mos}, one-way audio "
              f"{'yes' if r.one_way_audio else 'no'}")
    if r.ok:
        print(f"PASS {s.name}: {timing}", flush=True)
    else:
        print(f"FAIL {s.name}: {r.failed_step}: {r.failure}\n     {timing}", flush=True)


async def _run(args: argparse.Namespace, scenarios: list[Scenario], index: PromptIndex,
               transcriber: Transcriber | None = None) -> int:
    from media.phone import Phone

    from .call import CallResult, run_call
    from .pool import harness_phone_config, refuse_incoming
    from .results import write_results

    phone = Phone(harness_phone_config(args.sip_port, args.rtp_port), refuse_incoming)
    await phone.start()
    records = _records(args)
    results: list[CallResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-harness-") as tmp:
            keep = Path(args.keep_audio) if args.keep_audio else None
            gate = asyncio.Semaphore(max(1, min(args.parallel, 4)))

            async def one(s: Scenario) -> CallResult:
                if args.dial:
                    s = s.model_copy(update={"dial": args.dial})
                async with gate:
                    print(f"{s.name} ({s.path}): dial {s.dial}", flush=True)
                    r = await run_call(phone, s, index, Path(tmp), records, transcriber,
                                       on_step=_print_step, keep_audio=keep)
                _print_result(s, r)
                return r

            results = list(await asyncio.gather(*(one(s) for s in scenarios)))
    finally:
        await phone.stop()
    write_results(results, Path(args.junit) if args.junit else None,
                  Path(args.json) if args.json else None)
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    scenarios, problems = _load_all(args.targets)
    try:
        index = PromptIndex.load(_prompts_dir(args), default_cache_dir())
    except PromptSetError as exc:
        problems.append(str(exc))
        index = None
    if index is not None:
        known = {p.key for p in index.prompts}
        for s in scenarios:
            problems.extend(check_prompts(s, known, index.sets()))
    if problems or index is None:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    try:
        transcriber = _transcriber(args, index)
    except Exception as exc:  # noqa: BLE001  (a recogniser that cannot load: say which)
        print(f"--speech {args.speech}: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, scenarios, index, transcriber))


def _transcriber(args: argparse.Namespace, index: PromptIndex) -> Transcriber | None:
    """--speech LANG: the stack's recogniser (speech.backend, speech.models of --config or
    $IVR_CONFIG) for text steps that are no prompt of the sets, and for "heard" messages."""
    if not args.speech:
        return None
    from ivr.speech.recognizer import create_recognizer

    from ..config import load_settings
    from .transcribe import RecognizerTranscriber

    config = getattr(args, "config", None)
    speech = load_settings(Path(config) if config else None).speech
    recognizer = create_recognizer(speech.backend, speech.models)
    if args.speech not in recognizer.languages():
        raise ValueError(f"the {speech.backend} recogniser has no model for {args.speech} "
                         f"(it has: {', '.join(sorted(recognizer.languages()))})")
    return RecognizerTranscriber.for_index(recognizer, args.speech, index)


def _live_table(stats: LoadStats, plan: LoadPlan, elapsed_s: float, active: int) -> Table:
    from rich.table import Table

    t = Table(title=f"ivr-harness load: {elapsed_s:5.0f} s of {plan.duration_s:g} s, "
              f"{active} calls up (target {plan.calls}), {plan.processes} processes")
    for col in ("started", "passed", "failed", "timing", "p50", "p90", "p99", "max"):
        t.add_column(col, justify="right")
    first = True
    for name, h in stats.whole.items():
        s = stats.summary(h)
        counts = [str(stats.started), str(stats.passed), str(stats.failed)] if first else [""] * 3
        t.add_row(*counts, name, *(str(s.get(k, "-")) for k in ("p50", "p90", "p99", "max")))
        first = False
    for (step, cause), n in stats.failures.most_common(5):
        t.add_row("", "", str(n), "failure", step, cause[:60], "", "")
    return t


def cmd_load(args: argparse.Namespace) -> int:
    from .load import LoadPlan, LoadStats, parse_duration, parse_rate, stop_callers
    from .pool import caller_main, fork_callers

    scenarios, problems = _load_all([args.scenario])
    try:
        index = PromptIndex.load(_prompts_dir(args), default_cache_dir())
    except PromptSetError as exc:
        problems.append(str(exc))
        index = None
    try:
        plan = LoadPlan(args.calls, parse_rate(args.rate), parse_duration(args.duration),
                        args.total, args.sip_port, args.rtp_port)
        if plan.calls <= 0:
            raise ValueError(f"--calls {plan.calls}: give the number of calls to keep up")
    except ValueError as exc:
        problems.append(str(exc))
    if len(scenarios) > 1:
        problems.append("load runs one scenario: give a file, not a directory")
    if index is not None:
        for s in scenarios:
            problems.extend(check_prompts(s, {p.key for p in index.prompts}, index.sets()))
    if problems or index is None or not scenarios:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    scenario = scenarios[0]
    if args.dial:
        scenario = scenario.model_copy(update={"dial": args.dial})
    # The warm parent: everything loaded, no thread or loop yet; fork the callers now.
    callers = fork_callers(plan.processes, plan.sip_port, plan.rtp_port,
                           caller_main(scenario, index, _records(args)))
    stats = LoadStats()
    try:
        asyncio.run(_drive(args, plan, callers, stats))
    except KeyboardInterrupt:
        stop_callers(callers)
        raise
    data = {"scenario": scenario.path, "name": scenario.name,
            "plan": {"calls": plan.calls, "rate_per_s": plan.rate_per_s,
                     "duration_s": plan.duration_s, "total": plan.total,
                     "processes": plan.processes},
            **stats.as_dict()}
    from .report import html_report

    report = Path(args.report)
    report.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    report.with_suffix(".html").write_text(html_report(f"ivr-harness load: {scenario.name}",
                                                       data))
    summary = stats.summary(stats.whole["key_to_prompt_ms"])
    print(f"{stats.started} calls: {stats.passed} passed, {stats.failed} failed; key->prompt "
          f"{summary}; report {report.with_suffix('.html')} and .json")
    return 1 if stats.failed else 0


async def _drive(args: argparse.Namespace, plan: LoadPlan, callers: list[Caller],
                 stats: LoadStats) -> None:
    from .load import run_load

    if args.no_live or not sys.stdout.isatty():
        last = [0.0]

        def tick(elapsed: float, active: int) -> None:
            if elapsed - last[0] >= 5:
                last[0] = elapsed
                print(f"{elapsed:5.0f} s: {active} up, {stats.started} started, "
                      f"{stats.passed} passed, {stats.failed} failed", flush=True)

        await run_load(plan, callers, stats, tick)
        return
    from rich.live import Live

    with Live(refresh_per_second=2) as live:
        def tick(elapsed: float, active: int) -> None:
            live.update(_live_table(stats, plan, elapsed, active))

        await run_load(plan, callers, stats, tick)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-harness",
                                description="Scripted test calls against the IVR")
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate scenario files (and the prompts they name)")
    check.add_argument("targets", nargs="+", help="scenario files or directories")
    check.add_argument("--prompts", help="prompt sets directory (default: the stack's "
                       "paths.prompts_dir)")
    check.add_argument("--config", help="the stack's settings file (for its prompts)")
    check.set_defaults(fn=cmd_check)
    run = sub.add_parser("run", help="run scenarios, one call at a time")
    run.add_argument("targets", nargs="+", help="scenario files or directories")
    run.add_argument("--prompts", help="prompt sets directory (default: the stack's "
                     "paths.prompts_dir)")
    run.add_argument("--config", help="the stack's settings file: its call store for check "
                     "steps, its prompts")
    run.add_argument("--db", help="the stack's call store (ivr.sqlite3) for check steps")
    run.add_argument("--junit", help="write JUnit XML here")
    run.add_argument("--json", help="write the JSON results here")
    run.add_argument("--keep-audio", help="write what each call heard (WAV) to this "
                     "directory")
    run.add_argument("--dial", help="call this URI instead of each scenario's dial")
    run.add_argument("--parallel", type=int, default=1,
                     help="calls at once (1-4; default 1: one after the other)")
    run.add_argument("--sip-port", type=int, default=5090, help="our SIP port (UDP)")
    run.add_argument("--rtp-port", type=int, default=30000, help="first RTP port")
    run.add_argument("--speech", metavar="LANG", help="check text steps that are no prompt "
                     "of the sets by transcript, with the stack's speech recogniser in LANG "
                     "(e.g. en-US; speech.backend and speech.models of --config)")
    run.set_defaults(fn=cmd_run)
    load = sub.add_parser("load", help="keep N calls of one scenario up from a pool of "
                          "caller processes; live view, HTML and JSON report")
    load.add_argument("scenario", help="the scenario file")
    load.add_argument("--calls", type=int, default=10, help="calls to keep up at once")
    load.add_argument("--rate", default="5/s", help="new calls per second at most (5/s)")
    load.add_argument("--duration", default="60s", help="how long to start calls (90s, 10m)")
    load.add_argument("--total", type=int, help="stop after starting this many calls")
    load.add_argument("--report", default="harness-load",
                      help="report path without suffix: writes .html and .json")
    load.add_argument("--no-live", action="store_true", help="a line every 5 s instead of "
                      "the live view")
    for a in ("--prompts", "--config", "--db", "--dial"):
        load.add_argument(a)
    load.add_argument("--sip-port", type=int, default=5100,
                      help="first caller's SIP port; caller i uses this + i")
    load.add_argument("--rtp-port", type=int, default=32000,
                      help="first caller's RTP port; caller i uses this + 64 i")
    load.set_defaults(fn=cmd_load)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
