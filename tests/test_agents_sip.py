"""Agents' SIP credentials: the store keeps digest hashes only, the CLI refuses bad input
with a message and changes nothing, and no password ever reaches the database file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from ivr.agent_credentials import (
    AgentError,
    AgentSip,
    check_agent_id,
    check_password,
    make_hashes,
    parse_queues,
)
from ivr.store import SCHEMA_VERSION, CallStore
from tests.test_cli_paths import ivr

PASSWORD = "Correct-Horse-42"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def test_ha1_is_md5_of_id_realm_password_and_ha1b_has_the_domain() -> None:
    ha1, ha1b = make_hashes("1001", "callcenter", "127.0.0.1", PASSWORD)
    assert ha1 == _md5(f"1001:callcenter:{PASSWORD}")
    assert ha1b == _md5(f"1001@127.0.0.1:callcenter:{PASSWORD}")


@pytest.mark.parametrize("bad", ["", "a b", "al'ice", "x;y", "-lead", "é", "a" * 65, "a@b"])
def test_an_agent_id_outside_letters_digits_dot_dash_underscore_is_refused(bad: str) -> None:
    with pytest.raises(AgentError, match="letters, digits"):
        check_agent_id(bad)


@pytest.mark.parametrize(("password", "why"), [
    ("", "empty"), ("short1", "too short"), ("aaaaaaaaaa", "too weak"),
    ("agent1001", "too weak"), ("pass\x00word9", "control character")])
def test_weak_or_empty_passwords_are_refused_without_repeating_them(
        password: str, why: str) -> None:
    agent = "agent1001"
    with pytest.raises(AgentError, match=why) as info:
        check_password(password, agent)
    if password and password != agent:
        assert password not in str(info.value)


def test_queues_parse_with_proficiency_1_to_10() -> None:
    assert parse_queues("support:5, sales:2,billing") == (
        ("support", 5), ("sales", 2), ("billing", 5))
    for bad, why in [("support:0", "outside 1-10"), ("sales:11", "outside 1-10"),
                     ("sales:x", "whole number"), ("Sales:2", "lower-case"),
                     ("a:1,a:2", "twice")]:
        with pytest.raises(AgentError, match=why):
            parse_queues(bad)


def _agent(agent_id: str = "1001") -> AgentSip:
    ha1, ha1b = make_hashes(agent_id, "callcenter", "127.0.0.1", PASSWORD)
    return AgentSip(agent_id, "Ann Agent", "callcenter", ha1, ha1b, (("support", 5),),
                    10.0, 10.0)


def test_the_store_adds_lists_rehashes_and_removes_agents(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "s.sqlite3")
    store.add_agent_sip(_agent("1001"))
    store.add_agent_sip(_agent("0999"))
    with pytest.raises(AgentError, match="exists already"):
        store.add_agent_sip(_agent("1001"))
    assert [a.agent_id for a in store.agents_sip()] == ["0999", "1001"]
    assert store.agent_sip("1001") == _agent("1001")
    store.set_agent_sip_hashes("1001", "callcenter", "a" * 32, "b" * 32, 20.0)
    changed = store.agent_sip("1001")
    assert changed is not None
    assert (changed.ha1, changed.ha1b, changed.created_at, changed.updated_at) == (
        "a" * 32, "b" * 32, 10.0, 20.0)
    store.remove_agent_sip("1001")
    assert store.agent_sip("1001") is None
    for fn in (lambda: store.remove_agent_sip("nobody"),
               lambda: store.set_agent_sip_hashes("nobody", "r", "a", "b", 1.0)):
        with pytest.raises(AgentError, match="no agent 'nobody'"):
            fn()


def test_a_version_2_store_opens_and_gains_the_agents_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # what version 2 had (the tables that matter here)
        db.execute("CREATE TABLE blocked_calls (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " at REAL NOT NULL, reason TEXT NOT NULL, sip_code INTEGER NOT NULL,"
                   " source TEXT NOT NULL, from_uri TEXT NOT NULL, to_uri TEXT NOT NULL,"
                   " sip_call_id TEXT NOT NULL)")
        db.execute("INSERT INTO blocked_calls (at, reason, sip_code, source, from_uri,"
                   " to_uri, sip_call_id) VALUES (1, 'flood', 0, 'x', 'f', 't', 'c')")
        db.execute("PRAGMA user_version=2")
    store = CallStore(path)
    assert store.blocked_counts() == {"flood": 1}
    store.add_agent_sip(_agent())
    assert [a.agent_id for a in store.agents_sip()] == ["1001"]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6


def _var(tmp_path: Path) -> dict[str, str]:
    return {"IVR_PATHS_VAR_DIR": str(tmp_path / "var")}


def test_agent_add_list_passwd_remove_through_the_cli(tmp_path: Path) -> None:
    env = _var(tmp_path)
    added = ivr(tmp_path, "agent", "add", "1001", "--name", "Ann Agent", "--password",
                PASSWORD, "--queues", "support:5,sales:2", **env)
    assert added.returncode == 0, added.stderr
    assert "sip:1001@127.0.0.1" in added.stdout
    listed = ivr(tmp_path, "agent", "list", **env)
    assert listed.returncode == 0, listed.stderr
    assert "1001" in listed.stdout and "Ann Agent" in listed.stdout
    assert "support:5,sales:2" in listed.stdout
    store = CallStore(tmp_path / "var" / "ivr.sqlite3")
    before = store.agent_sip("1001")
    store.close()
    assert before is not None and before.ha1 == _md5(f"1001:callcenter:{PASSWORD}")
    # the password from standard input (out of the process list)
    new = "Battery-Staple-77"
    changed = ivr_stdin(tmp_path, new + "\n", "agent", "passwd", "1001", **env)
    assert changed.returncode == 0, changed.stderr
    store = CallStore(tmp_path / "var" / "ivr.sqlite3")
    after = store.agent_sip("1001")
    store.close()
    assert after is not None and after.ha1 == _md5(f"1001:callcenter:{new}")
    removed = ivr(tmp_path, "agent", "remove", "1001", **env)
    assert removed.returncode == 0, removed.stderr
    assert "no agents" in ivr(tmp_path, "agent", "list", **env).stdout


def ivr_stdin(cwd: Path, stdin: str, *args: str, **env_extra: str):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    (("--name", "A", "--password", PASSWORD, "--queues", "support:11"), "outside 1-10"),
    (("--name", "A", "--password", "short"), "too short"),
    (("--name", "A", "--password", ""), "empty"),
    (("--name", "", "--password", PASSWORD), "name ''"),
])
def test_bad_agent_input_is_refused_by_the_cli_and_nothing_is_stored(
        tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    env = _var(tmp_path)
    result = ivr(tmp_path, "agent", "add", "1001", *args, **env)
    assert result.returncode == 1
    assert "agent not added" in result.stderr and message in result.stderr
    assert "no agents" in ivr(tmp_path, "agent", "list", **env).stdout


def test_the_cli_names_a_bad_id_a_duplicate_and_an_unknown_agent(tmp_path: Path) -> None:
    env = _var(tmp_path)
    bad = ivr(tmp_path, "agent", "add", "al ice", "--name", "A", "--password", PASSWORD, **env)
    assert bad.returncode == 1 and "agent id 'al ice'" in bad.stderr
    assert ivr(tmp_path, "agent", "add", "1001", "--name", "A", "--password", PASSWORD,
               **env).returncode == 0
    dup = ivr(tmp_path, "agent", "add", "1001", "--name", "B", "--password", PASSWORD, **env)
    assert dup.returncode == 1 and "agent '1001' exists already" in dup.stderr
    for cmd in (("remove", "1002"), ("passwd", "1002", "--password", PASSWORD)):
        result = ivr(tmp_path, "agent", *cmd, **env)
        assert result.returncode == 1 and "no agent '1002'" in result.stderr
    listed = ivr(tmp_path, "agent", "list", **env).stdout
    assert "1001" in listed and " B " not in listed


def test_no_password_is_in_the_database_files_or_the_output(tmp_path: Path) -> None:
    env = _var(tmp_path)
    out = [ivr(tmp_path, "agent", "add", "1001", "--name", "A", "--password", PASSWORD, **env),
           ivr_stdin(tmp_path, "Second-Secret-99\n", "agent", "passwd", "1001", **env),
           ivr(tmp_path, "agent", "list", **env)]
    for result in out:
        assert result.returncode == 0, result.stderr
        for secret in (PASSWORD, "Second-Secret-99"):
            assert secret not in result.stdout + result.stderr
    files = list((tmp_path / "var").glob("ivr.sqlite3*"))
    assert files
    for f in files:
        raw = f.read_bytes()
        for secret in (PASSWORD, "Second-Secret-99"):
            assert secret.encode() not in raw, f
    assert _md5("1001:callcenter:Second-Secret-99").encode() in b"".join(
        f.read_bytes() for f in files)


def test_agent_list_marks_agents_whose_hashes_have_another_realm(tmp_path: Path) -> None:
    env = _var(tmp_path)
    assert ivr(tmp_path, "agent", "add", "1001", "--name", "A", "--password", PASSWORD,
               **env).returncode == 0
    listed = ivr(tmp_path, "agent", "list", IVR_FRONT_AUTH_REALM="newrealm", **env)
    assert "password set for realm 'callcenter', the front's is 'newrealm'" in listed.stdout
    assert "realm" not in ivr(tmp_path, "agent", "list", **env).stdout.split("\n", 1)[1]
