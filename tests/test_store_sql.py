"""The store's SQL outside its SQLite adapter is what PostgreSQL also accepts: no SQLite
syntax in the shared modules, and every statement prepared by a real PostgreSQL server
(a throwaway cluster on a Unix socket, no TCP) against the tables as a PostgreSQL adapter
would create them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.store import sql
from ivr.store.sqlite import DDL

STORE = Path(__file__).resolve().parent.parent / "ivr" / "store"
SQLITE_ONLY = ["AUTOINCREMENT", "PRAGMA", "INSERT OR", "BEGIN IMMEDIATE", "json_extract",
               "sqlite_master", "import sqlite3", "IFNULL"]


@pytest.mark.parametrize("module", sorted(p.name for p in STORE.glob("*.py")
                                          if p.name != "sqlite.py"))
def test_no_sqlite_syntax_outside_the_sqlite_adapter(module: str) -> None:
    text = (STORE / module).read_text()
    code = re.sub(r'"""[\s\S]*?"""', "", text)  # docstrings may name them
    code = "\n".join(line.split("#")[0] for line in code.splitlines())
    assert [w for w in SQLITE_ONLY
            if re.search(rf"\b{w}\b", code, re.IGNORECASE)] == []


def statements() -> dict[str, str]:
    """Every statement the store runs, whole (fragments joined as the store joins them)."""
    out = {name: value for name, value in vars(sql).items()
           if name.isupper() and isinstance(value, str)
           and value.split(" ", 1)[0] in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    out["SET_ENDED_OPEN"] = sql.SET_ENDED + sql.OPEN_ONLY
    out["QUEUE_LOG_FILTERED"] = (sql.QUEUE_LOG + " WHERE at >= ? AND queue = ? AND "
                                 "agent_id = ? AND call_id = ?" + sql.QUEUE_LOG_ORDER)
    return out


def test_the_statements_are_all_listed() -> None:
    names = statements()
    assert {"INSERT_QUEUE_LOG", "AGENT_STATES", "OPEN_QUEUE_ENTRIES", "INSERT_RECORDING",
            "ADD_MENU_CHOICE", "QUEUE_LOG_FILTERED"} <= set(names)
    assert len(names) >= 30


def postgres_ddl() -> str:
    """The SQLite adapter's DDL with PostgreSQL's types (what its adapter will hold)."""
    ddl = DDL.replace("INTEGER PRIMARY KEY AUTOINCREMENT",
                      "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)


def _numbered(statement: str) -> str:
    n = 0

    def one(_m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return re.sub(r"\?", one, statement)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[Path, str]]:
    """A PostgreSQL server of our own: (its Unix socket directory, the user to connect as)."""
    bin_dir = _pg_bin()
    if bin_dir is None or shutil.which("psql") is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup --test installs it)")
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    top = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    data, sock = top / "data", top / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(top, "postgres")
        shutil.chown(sock, "postgres")
    proc = None
    try:
        subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", user,
                        "--auth=trust", "--no-sync"], check=True, capture_output=True,
                       timeout=120)
        proc = subprocess.Popen(
            [*run_as, str(bin_dir / "postgres"), "-D", str(data), "-k", str(sock),
             "-c", "listen_addresses=", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            ready = subprocess.run(["psql", "-h", str(sock), "-U", user, "-d", "postgres",
                                    "-Atc", "SELECT 1"], capture_output=True, text=True)
            if ready.returncode == 0:
                break
            if proc.poll() is not None:
                pytest.fail(f"postgres exited with {proc.returncode}")
            time.sleep(0.1)
        else:
            pytest.fail("postgres did not accept connections")
        yield sock, user
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()  # smart shutdown of the server we started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(top, ignore_errors=True)


def psql(server: tuple[Path, str], script: str) -> subprocess.CompletedProcess[str]:
    sock, user = server
    return subprocess.run(["psql", "-h", str(sock), "-U", user, "-d", "postgres", "-X",
                           "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=120)


def test_postgresql_takes_the_schema_and_prepares_every_statement(
        postgres: tuple[Path, str]) -> None:
    prepares = "\n".join(f"PREPARE {name.lower()} AS {_numbered(text)};"
                         for name, text in statements().items())
    script = (f"BEGIN;\n{postgres_ddl()}\n{prepares}\n"
              "SAVEPOINT one_write;\nROLLBACK TO SAVEPOINT one_write;\n"
              "RELEASE SAVEPOINT one_write;\nROLLBACK;\n")
    done = psql(postgres, script)
    assert done.returncode == 0, done.stderr


def test_postgresql_reads_the_latest_agent_state_and_open_entries_as_sqlite_does(
        postgres: tuple[Path, str]) -> None:
    rows = [  # at, event, call_id, queue, agent_id, priority, new_state, reason
        (1, "AGENTLOGIN", "", "", "a1", None, "ready", ""),
        (2, "ENTERQUEUE", "c1", "q", "", 5, "", ""),
        (3, "ENTERQUEUE", "c2", "q", "", None, "", ""),
        (4, "PAUSE", "", "", "a1", None, "not_ready", "lunch"),
        (5, "ABANDON", "c1", "q", "", None, "", ""),
    ]
    values = ", ".join(
        f"({at}, '{ev}', '{c}', '{q}', '{a}', {'NULL' if p is None else p}, '{s}', '{r}')"
        for at, ev, c, q, a, p, s, r in rows)
    script = (f"BEGIN;\n{postgres_ddl()}\n"
              "INSERT INTO queue_log (at, event, call_id, queue, agent_id, priority,"
              f" new_state, reason) VALUES {values};\n"
              f"{sql.AGENT_STATES};\n{sql.OPEN_QUEUE_ENTRIES};\nROLLBACK;\n")
    sock, user = postgres
    done = subprocess.run(["psql", "-h", str(sock), "-U", user, "-d", "postgres", "-X",
                           "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stdout.splitlines() if "|" in x]
    assert lines == ["a1|not_ready|lunch|4", "c2|q|3|"]
