"""The ``ivr`` command.

    ivr run            start the whole stack (Kamailio, controller, pool of workers)
    ivr worker         start one call worker
    ivr flow check F   validate a flow file against the schema and the prompt sets
    ivr acd check [F]  validate the ACD file (queues, agents, call reasons; default paths.acd)
    ivr reload         swap the flow and prompt sets in the running stack (checked first)
    ivr calls          list recent calls from the store
    ivr blocked        calls the front refused, by reason
    ivr call ID        show one call and its events
    ivr config show    print the effective settings (file + environment)
    ivr prompts load P --set NAME   check, convert and activate an uploaded prompt set
                       (also: prompts list, prompts activate NAME V, prompts rollback NAME)
    ivr agent add ID --name N [--password P] [--queues support:5,sales:2]
                       an agent's SIP account (also: agent list, agent remove ID,
                       agent passwd ID); only digest hashes are stored
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import sys
import time
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings, load_settings
from .logs import log_fallback_path, setup_logging
from .store import CallStore, StoreError


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def cmd_worker(args: argparse.Namespace) -> int:
    from media.errors import MediaError

    from .worker import StartupError, Worker

    settings = _settings(args)
    setup_logging(settings.log.level, settings.log.format,
                  fallback=log_fallback_path(settings.paths.var_dir))
    faulthandler.enable()
    try:
        asyncio.run(Worker(settings).run())
    except (StartupError, StoreError, MediaError) as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .controller import run_controller

    settings = _settings(args)
    setup_logging(settings.log.level, settings.log.format,
                  fallback=log_fallback_path(settings.paths.var_dir))
    return run_controller(settings)


def cmd_flow_check(args: argparse.Namespace) -> int:
    from media.errors import PromptError

    from .flow import FlowError, check_flow_prompts, load_flow
    from .prompts import load_prompt_sets

    settings = _settings(args)
    prompts_dir = Path(args.prompts) if args.prompts else settings.paths.prompts_dir
    try:
        sets = load_prompt_sets(prompts_dir, settings.paths.var_dir / "cache" / "prompts",
                                settings.media.clock_rate_hz,
                                store_root=settings.paths.var_dir / "prompts")
    except PromptError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    available = {name: set(ps.files) for name, ps in sets.items()}
    failed = False
    for name in args.files:
        try:
            flow, smap = load_flow(Path(name))
        except FlowError as exc:
            for issue in exc.issues:
                print(f"{issue}", file=sys.stderr)
            failed = True
            continue
        issues = check_flow_prompts(flow, smap, available) + _check_speech(flow, smap, settings)
        for issue in issues:
            print(f"{issue}", file=sys.stderr)
        if issues:
            failed = True
        else:
            print(f"{name}: ok (flow {flow.name!r} version {flow.version}, "
                  f"{len(flow.nodes)} nodes, prompt set {flow.language})")
    return 1 if failed else 0


def _check_speech(flow: Any, smap: Any, settings: Any) -> list[Any]:
    """A flow with speech menus is checked against the configured recogniser (its models'
    languages and dictionaries); it is loaded only then (PocketSphinx 0.3 s, Vosk ~2 s)."""
    from .flow import check_flow_speech
    from .flow.model import FlowIssue
    from .flow.speech import flow_listens
    from .speech.recognizer import RecognizerError, create_recognizer

    if not flow_listens(flow.nodes.values()):
        return []
    try:
        recognizer = create_recognizer(settings.speech.backend, settings.speech.models)
    except RecognizerError as exc:
        return [FlowIssue(smap.path, None, None, f"speech menus cannot be checked: {exc}")]
    return list(check_flow_speech(flow, smap, set(recognizer.languages()),
                                  recognizer.unknown_words))


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _existing_store(settings: Settings) -> CallStore | None:
    """The call store for reading; None (with a message) when there is none, so that a
    mistyped var dir is named instead of answered with an empty new database."""
    if not settings.db_path.is_file():
        print(f"ivr: no call store at {settings.db_path} (paths.var_dir is "
              f"{settings.paths.var_dir}; has the stack run with these settings?)",
              file=sys.stderr)
        return None
    return CallStore(settings.db_path)


def cmd_calls(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _existing_store(settings)
    if store is None:
        return 1
    calls = store.recent_calls(args.limit)
    if args.json:
        print(json.dumps([c.__dict__ for c in calls], indent=2))
        return 0
    print(f"{'arrived':19}  {'dur':>5}  {'end':14} {'by':6} {'sip':>4}  {'menu path':32} call id")
    for c in calls:
        dur = f"{c.ended_at - c.arrived_at:5.1f}" if c.ended_at else "  -  "
        print(f"{_fmt_time(c.arrived_at):19}  {dur}  {c.end_reason or 'in progress':14} "
              f"{c.hangup_by or '-':6} {c.sip_code or '-':>4}  {c.menu_path or '-':32} "
              f"{c.call_id}")
    return 0


def cmd_blocked(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = CallStore(settings.db_path)
    since = time.time() - args.hours * 3600 if args.hours else None
    rows = store.blocked_calls(args.limit, since=since)
    if args.json:
        print(json.dumps([b.__dict__ for b in rows], indent=2))
        return 0
    counts = store.blocked_counts(since=since)
    window = f"in the last {args.hours:g} h" if args.hours else "in all"
    total = sum(counts.values())
    print(f"{total} refused {window}: " +
          (", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"))
    if rows:
        print(f"{'at':19}  {'reason':12} {'sip':>3}  {'source':15} {'from':32} call-id")
    for b in rows:
        print(f"{_fmt_time(b.at):19}  {b.reason:12} {b.sip_code or '-':>3}  {b.source:15} "
              f"{b.from_uri[:32]:32} {b.sip_call_id}")
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _existing_store(settings)
    if store is None:
        return 1
    call = store.get_call(args.call_id) or store.find_by_sip_call_id(args.call_id)
    if call is None:
        print(f"ivr: no call {args.call_id!r} in {settings.db_path}", file=sys.stderr)
        return 1
    print(json.dumps(call.__dict__, indent=2))
    for ev in store.events(call.call_id):
        print(f"  {ev.at - call.arrived_at:8.3f}s  {ev.kind:14} {json.dumps(ev.data)}")
    rows = store.queue_log(call_id=call.call_id)
    if rows:
        print("queue log:")
    for r in rows:
        fields = {k: v for k, v in r._asdict().items()
                  if k not in ("at", "event", "call_id") and v not in ("", None)}
        print(f"  {r.at - call.arrived_at:8.3f}s  {r.event.value:14} "
              + " ".join(f"{k}={v}" for k, v in fields.items()))
    recordings = store.recordings(call.call_id)
    if recordings:
        print("recordings:")
    for rec in recordings:
        who = f"agent {rec.agent_id} in {rec.queue or '-'}" if rec.agent_id else "no agent"
        print(f"  {rec.started_at - call.arrived_at:8.3f}s  {rec.duration_s:.1f} s, "
              f"{rec.channels} channel{'s' if rec.channels != 1 else ''}, {who}: {rec.path}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Check the flow and prompt sets, then ask the running stack to take them."""
    import os
    import signal

    from .flowset import FlowSetError, load_flow_and_prompts

    settings = _settings(args)
    try:
        flow, sets = load_flow_and_prompts(settings)
    except FlowSetError as exc:
        print(f"ivr: reload refused, nothing changed:\n{exc}", file=sys.stderr)
        return 1
    pid_file = settings.run_dir / "controller.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"ivr: no running stack found ({pid_file}: {exc})", file=sys.stderr)
        return 1
    print(f"flow {flow.name!r} version {flow.version} with prompt sets "
          f"{', '.join(sorted(sets))} sent to the stack (controller {pid}); new calls take it, "
          "calls in progress finish on the version they began with")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    print(_settings(args).to_yaml(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr", description="Contact-center IVR server")
    p.add_argument("--config", help="settings file (YAML); default: $IVR_CONFIG or built-ins")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole stack: Kamailio, controller, worker pool"
                   ).set_defaults(fn=cmd_run)
    sub.add_parser("worker", help="start one call worker alone (development, <= 4 calls)"
                   ).set_defaults(fn=cmd_worker)
    flow = sub.add_parser("flow", help="flow tools").add_subparsers(dest="flow_cmd", required=True)
    check = flow.add_parser("check", help="validate flow files")
    check.add_argument("files", nargs="+")
    check.add_argument("--prompts", help="prompt sets directory (default: settings)")
    check.set_defaults(fn=cmd_flow_check)
    sub.add_parser("reload", help="check the flow and prompt sets, then swap them in the "
                   "running stack (calls in progress keep theirs)").set_defaults(fn=cmd_reload)
    calls = sub.add_parser("calls", help="list recent calls")
    calls.add_argument("-n", "--limit", type=int, default=20)
    calls.add_argument("--json", action="store_true")
    calls.set_defaults(fn=cmd_calls)
    blocked = sub.add_parser("blocked", help="calls the SIP front refused (busy, limits, "
                             "flood, not allowed), newest first, with counts by reason")
    blocked.add_argument("-n", "--limit", type=int, default=20)
    blocked.add_argument("--hours", type=float, default=0,
                         help="only the last HOURS (default: all)")
    blocked.add_argument("--json", action="store_true")
    blocked.set_defaults(fn=cmd_blocked)
    call = sub.add_parser("call", help="show one call with its events")
    call.add_argument("call_id", help="our call id or the SIP Call-ID")
    call.set_defaults(fn=cmd_call)
    cfg = sub.add_parser("config", help="settings").add_subparsers(dest="cfg_cmd", required=True)
    cfg.add_parser("show", help="print the effective settings").set_defaults(fn=cmd_config_show)
    from .agent_cli import add_agent_parser
    from .prompt_cli import add_prompts_parser

    add_prompts_parser(sub)  # ivr prompts load|list|activate|rollback
    from .acd.cli import add_acd_parser

    add_acd_parser(sub)  # ivr acd check
    add_agent_parser(sub)  # ivr agent add|list|remove|passwd
    from .supervise_cli import add_supervise_parser

    add_supervise_parser(sub)  # ivr supervise CALL --listen|--whisper|--barge|--end
    from .emergency_cli import add_emergency_parser

    add_emergency_parser(sub)  # ivr emergency on|off|show
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
