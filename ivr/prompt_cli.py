"""``ivr prompts ...``: the prompt library for ops staff (see ``ivr.prompt_store``).

    ivr prompts load PATH --set NAME [--flow F ...]   check, convert, store, activate
    ivr prompts list [--set NAME]                     versions, and which one is active
    ivr prompts activate NAME VERSION                 switch to a stored version, or
                                                      ``shipped`` (the set in prompts/)
    ivr prompts rollback NAME                         back to the version before the active
                                                      one (from v1: the shipped set)

Exit status: 0 done, 1 refused (every problem printed as ``file: reason``), 2 bad settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import Settings, load_settings
from .prompt_store import (
    PromptStoreError,
    PromptUploadError,
    VersionInfo,
    activate,
    active_version,
    flows_for_set,
    list_sets,
    list_versions,
    load_upload,
    rollback,
    store_root_for,
)

RELOAD_NOTE = ("A running stack takes it with 'ivr reload' (new calls hear it; calls in "
               "progress finish on the version they began with).")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _flows(args: argparse.Namespace, settings: Settings, set_name: str) -> list[Path]:
    if args.flow:
        return [Path(f) for f in args.flow]
    return flows_for_set(set_name, settings.paths.flow)


def _refused(header: str, exc: PromptStoreError) -> int:
    if exc.problems:
        print(f"ivr: {header}; nothing changed. {len(exc.problems)} problem(s):",
              file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
    else:
        print(f"ivr: {exc}", file=sys.stderr)
    return 1


def _fmt_s(s: float) -> str:
    return f"{s:.2f} s"


def cmd_prompts_load(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = store_root_for(settings.paths.var_dir)
    try:
        flows = _flows(args, settings, args.set_name)
        report = load_upload(Path(args.path), args.set_name, flows, root)
    except PromptUploadError as exc:
        return _refused(f"upload {args.path} refused", exc)
    except PromptStoreError as exc:
        return _refused("cannot load", exc)
    was = f"was v{report.previous}" if report.previous else "first upload"
    print(f"prompt set {report.set_name}: v{report.version} loaded and active ({was}); "
          f"{len(report.prompts)} prompts from {args.path}")
    checked = ", ".join(report.flows) if report.flows else "none (no flow uses this set)"
    print(f"  flows checked: {checked}")
    width = max((len(p.name) for p in report.prompts), default=4)
    for p in report.prompts:
        trims = []
        if p.trimmed_start_s:
            trims.append(f"{_fmt_s(p.trimmed_start_s)} at the start")
        if p.trimmed_end_s:
            trims.append(f"{_fmt_s(p.trimmed_end_s)} at the end")
        trim = f"; silence trimmed: {', '.join(trims)}" if trims else ""
        ch = "mono" if p.channels == 1 else f"{p.channels} ch"
        print(f"  {p.name:<{width}}  {p.source} ({p.format} {p.source_rate_hz} Hz {ch})  "
              f"{_fmt_s(p.duration_s)}  level {p.level_dbfs:.1f} dBFS{trim}")
    print(f"  stored in {report.path} (mono 16-bit, 8000 and 16000 Hz)")
    if report.previous:
        print(f"  undo with: ivr prompts rollback {report.set_name}")
    print(RELOAD_NOTE)
    return 0


def _version_line(v: VersionInfo) -> str:
    mark = "* active" if v.active else "        "
    return (f"  v{v.version:<4} {mark}  {v.loaded_at}  {v.prompts:3d} prompts  from {v.upload}")


def cmd_prompts_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = store_root_for(settings.paths.var_dir)
    shipped_dir = settings.paths.prompts_dir
    shipped = sorted(d.name for d in shipped_dir.iterdir()
                     if (d / "manifest.yaml").is_file()) if shipped_dir.is_dir() else []
    names = [args.set_name] if args.set_name else sorted(set(shipped) | set(list_sets(root)))
    try:
        for name in names:
            versions = list_versions(name, root)
            active = active_version(name, root)
            if active is None:
                where = (f"shipped set {shipped_dir / name}" if name in shipped
                         else "no prompt set")
                print(f"{name}: in use: {where} (nothing loaded)")
            else:
                print(f"{name}: in use: v{active} ({root / name / f'v{active}'})")
            for v in versions:
                print(_version_line(v))
    except PromptStoreError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_prompts_activate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = store_root_for(settings.paths.var_dir)
    try:
        info = activate(args.set_name, args.version, root, _flows(args, settings, args.set_name),
                        shipped_dir=settings.paths.prompts_dir)
    except PromptStoreError as exc:
        return _refused(f"cannot activate {args.set_name} {args.version}", exc)
    print(f"prompt set {info.set_name}: {_which(info)} is active ({info.path})")
    print(RELOAD_NOTE)
    return 0


def _which(info: VersionInfo) -> str:
    return "the shipped set" if info.version == 0 else f"v{info.version}"


def cmd_prompts_rollback(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = store_root_for(settings.paths.var_dir)
    try:
        info = rollback(args.set_name, root, _flows(args, settings, args.set_name),
                        shipped_dir=settings.paths.prompts_dir)
    except PromptStoreError as exc:
        return _refused(f"cannot roll back {args.set_name}", exc)
    print(f"prompt set {info.set_name}: rolled back to {_which(info)} ({info.path})")
    print(RELOAD_NOTE)
    return 0


def add_prompts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prompts load|list|activate|rollback`` to the ``ivr`` command."""
    prompts = sub.add_parser(
        "prompts", help="prompt library: load an upload, list, activate, roll back"
    ).add_subparsers(dest="prompts_cmd", required=True)
    flow_help = ("flow that uses the set: every prompt it names must be in the upload "
                 "(repeatable; default: the configured flow, if it uses the set)")
    load = prompts.add_parser("load", help="check, convert and activate a prompt set "
                                           "(a directory or a zip with manifest.yaml)")
    load.add_argument("path", help="directory or .zip: manifest.yaml + WAV/MP3/OGG/FLAC files")
    load.add_argument("--set", dest="set_name", required=True, metavar="NAME",
                      help="prompt set (language tag), e.g. en-US")
    load.add_argument("--flow", action="append", default=[], metavar="F", help=flow_help)
    load.set_defaults(fn=cmd_prompts_load)
    lst = prompts.add_parser("list", help="stored versions of each set, and the active one")
    lst.add_argument("--set", dest="set_name", metavar="NAME")
    lst.set_defaults(fn=cmd_prompts_list)
    act = prompts.add_parser("activate", help="make a stored version the active one")
    act.add_argument("set_name", metavar="NAME")
    act.add_argument("version", metavar="VERSION",
                     help="3 or v3, or 'shipped' for the set shipped in prompts/")
    act.add_argument("--flow", action="append", default=[], metavar="F", help=flow_help)
    act.set_defaults(fn=cmd_prompts_activate)
    rb = prompts.add_parser("rollback", help="activate the version before the active one")
    rb.add_argument("set_name", metavar="NAME")
    rb.add_argument("--flow", action="append", default=[], metavar="F", help=flow_help)
    rb.set_defaults(fn=cmd_prompts_rollback)
