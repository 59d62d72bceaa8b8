"""``ivr agent ...``: agents' SIP credentials in the store (see ``ivr.agent_credentials``).

    ivr agent add ID --name N [--password P] [--queues support:5,sales:2]
    ivr agent list
    ivr agent remove ID
    ivr agent passwd ID [--password P]

Without ``--password`` the password is asked for twice on a terminal, or read as one line
from standard input (scripts: ``printf '%s\\n' "$PW" | ivr agent add ...``), which keeps it
out of the process list. Only its digest hashes are stored. Exit status: 0 done, 1 refused
(the message says why; nothing changed), 2 bad settings or store.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from .agent_credentials import (
    AgentError,
    AgentSip,
    check_agent_id,
    check_display_name,
    check_password,
    format_queues,
    make_hashes,
    parse_queues,
)
from .config import Settings, load_settings
from .store import CallStore


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for agent {args.agent_id}: ")
        if getpass.getpass("again: ") != first:
            raise AgentError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _store_or_none(settings: Settings) -> CallStore | None:
    if not settings.db_path.is_file():
        print(f"ivr: no call store at {settings.db_path}, so no agents (paths.var_dir is "
              f"{settings.paths.var_dir})", file=sys.stderr)
        return None
    return CallStore(settings.db_path)


def _tell_stack(settings: Settings) -> None:
    """A running stack takes the change in its ACD at once (as ``ivr reload`` would)."""
    from .ops import OpsError, request

    try:
        request(settings.run_dir / "controller.sock", "acd.reload", {})
    except OpsError as exc:
        if "not running" not in str(exc):
            print(f"ivr: the running stack's ACD did not take the change: {exc}",
                  file=sys.stderr)
        return
    print("the running stack's ACD has taken the change")


def _signed_out_at_stack(settings: Settings, agent_id: str) -> None:
    """AgentError unless the running stack (if any) has ``agent_id`` signed out: removing
    a signed-in agent would leave the ACD with an agent the store no longer has."""
    from .ops import OpsError, request

    try:
        view = request(settings.run_dir / "controller.sock", "agent.show",
                       {"agent_id": agent_id})
    except OpsError:
        return  # not running, or not an ACD agent there
    if view.get("state") != "logged_out":
        raise AgentError(f"agent {agent_id} is {view.get('state')} at the running stack: sign "
                         f"them out first (ivr agent state {agent_id} logged-out)")


def cmd_agent_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        agent_id = check_agent_id(args.agent_id)
        name = check_display_name(args.name)
        queues = parse_queues(args.queues or "")
        password = check_password(_password(args), agent_id)
        realm = settings.front.auth_realm
        ha1, ha1b = make_hashes(agent_id, realm, settings.agent_domain, password)
        now = time.time()
        store = CallStore(settings.db_path)
        try:
            store.add_agent_sip(AgentSip(agent_id, name, realm, ha1, ha1b, queues, now, now))
        finally:
            store.close()
    except AgentError as exc:
        print(f"ivr: agent not added: {exc}", file=sys.stderr)
        return 1
    print(f"agent {agent_id} ({name}) added: its phone registers as "
          f"sip:{agent_id}@{settings.agent_domain}, user {agent_id}, realm {realm}"
          + (f"; queues {format_queues(queues)}" if queues else ""))
    if queues:
        _tell_stack(settings)
    return 0


def cmd_agent_passwd(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store_or_none(settings)
    if store is None:
        return 1
    try:
        agent_id = check_agent_id(args.agent_id)
        if store.agent_sip(agent_id) is None:
            raise AgentError(f"no agent {agent_id!r}")
        password = check_password(_password(args), agent_id)
        realm = settings.front.auth_realm
        ha1, ha1b = make_hashes(agent_id, realm, settings.agent_domain, password)
        store.set_agent_sip_hashes(agent_id, realm, ha1, ha1b, time.time())
    except AgentError as exc:
        print(f"ivr: password not changed: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"agent {agent_id}: password changed (its phone must use the new one at its next "
          "registration)")
    return 0


def cmd_agent_remove(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store_or_none(settings)
    if store is None:
        return 1
    try:
        _signed_out_at_stack(settings, args.agent_id)
        store.remove_agent_sip(args.agent_id)
    except AgentError as exc:
        print(f"ivr: agent not removed: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"agent {args.agent_id} removed (a phone registered now keeps its binding at the "
          "front until it expires; it cannot register again)")
    _tell_stack(settings)
    return 0


def cmd_agent_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.db_path.is_file():
        print("no agents (no call store yet)")
        return 0
    store = CallStore(settings.db_path)
    try:
        agents = store.agents_sip()
    finally:
        store.close()
    if not agents:
        print("no agents")
        return 0
    realm = settings.front.auth_realm
    print(f"{'id':16} {'name':24} {'queues':28} {'updated':19}")
    for a in agents:
        stale = "" if a.realm == realm else (
            f"  (password set for realm {a.realm!r}, the front's is {realm!r}: "
            "ivr agent passwd)")
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.updated_at))
        print(f"{a.agent_id:16} {a.display_name:24} {format_queues(a.queues) or '-':28} "
              f"{updated}{stale}")
    return 0


def add_agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agent add|list|remove|passwd`` to the ``ivr`` command."""
    agent = sub.add_parser("agent", help="agents: add, list, remove, passwd; state, wrapup, "
                           "show"
                           ).add_subparsers(dest="agent_cmd", required=True)
    pw_help = ("the password (visible in the process list; default: asked for, or one "
               "line from standard input)")
    add = agent.add_parser("add", help="add an agent whose phone may register at the front")
    add.add_argument("agent_id", metavar="ID", help="letters, digits . _ - (sip:ID@domain)")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--password", help=pw_help)
    add.add_argument("--queues", help="queue:proficiency (1-10) pairs, e.g. support:5,sales:2")
    add.set_defaults(fn=cmd_agent_add)
    agent.add_parser("list", help="the agents, their queues, when last changed"
                     ).set_defaults(fn=cmd_agent_list)
    rm = agent.add_parser("remove", help="remove an agent's SIP account")
    rm.add_argument("agent_id", metavar="ID")
    rm.set_defaults(fn=cmd_agent_remove)
    pw = agent.add_parser("passwd", help="set an agent's new password")
    pw.add_argument("agent_id", metavar="ID")
    pw.add_argument("--password", help=pw_help)
    pw.set_defaults(fn=cmd_agent_passwd)
    from .ops_cli import add_ops_parsers

    add_ops_parsers(agent, sub)  # agent state|wrapup|show, queue show
    from .supervise_cli import add_transfer_parsers

    add_transfer_parsers(agent)  # agent transfer|consult
