"""ivr/supervise.py without a stack: the var-dir lock, recognising this var dir's processes,
and the modes of the files that hold callers' data."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.store import CallStore
from ivr.supervise import (
    StackLock,
    StackRunningError,
    find_stack_processes,
    identify,
    replace_stale,
)


def test_a_second_lock_on_the_same_var_dir_is_refused_with_the_holders_pid(
        tmp_path: Path) -> None:
    run = tmp_path / "var" / "run"
    first = StackLock(run)
    first.acquire()
    with pytest.raises(StackRunningError, match=f"controller pid {os.getpid()}") as err:
        StackLock(run).acquire()
    assert err.value.pid == os.getpid()
    first.release()
    again = StackLock(run)
    again.acquire()  # free once released (or once its holder died)
    again.release()
    assert stat.S_IMODE(run.stat().st_mode) == 0o700


def test_a_pid_file_naming_another_program_is_never_signalled(tmp_path: Path) -> None:
    run = tmp_path / "var" / "run"
    run.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (run / "zygote.pid").write_text(f"{stranger.pid}\n")
        (run / "kamailio").mkdir()
        (run / "kamailio" / "kamailio.pid").write_text(f"{stranger.pid}\n")
        assert identify(stranger.pid, run) is None
        assert find_stack_processes(run) == []
        assert replace_stale(run, 0.0, lambda event, **_: None) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def _fake_pool_process(tmp_path: Path, sock: str) -> subprocess.Popen[bytes]:
    """A process with a zygote's command line (``python -m ivr.zygote SOCK``) that only
    sleeps: an ``ivr`` package of its own comes first on its path."""
    pkg = tmp_path / "fake" / "ivr"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "zygote.py").write_text("import time\ntime.sleep(60)\n")
    return subprocess.Popen([sys.executable, "-m", "ivr.zygote", sock], cwd=pkg.parent)


def test_this_var_dirs_processes_are_found_by_command_line_and_replaced(
        tmp_path: Path) -> None:
    run = tmp_path / "var" / "run"
    run.mkdir(parents=True)
    sock = str((run / "controller.sock").resolve())
    zygote = _fake_pool_process(tmp_path, sock)
    worker = _fake_pool_process(tmp_path, sock)
    elsewhere = _fake_pool_process(tmp_path, sock + "x")  # another var dir's
    mentions = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                 "-m", "ivr.zygote", sock])  # the words, not in place
    try:
        (run / "zygote.pid").write_text(f"{zygote.pid}\n")
        assert [(p.pid, p.role) for p in find_stack_processes(run)] == sorted(
            [(zygote.pid, "zygote"), (worker.pid, "worker")])
        logged: list[str] = []
        replaced = replace_stale(run, 0.0, lambda event, **_: logged.append(event))
        assert {p.pid for p in replaced} == {zygote.pid, worker.pid}
        assert logged == ["controller.stale_found", "controller.stale_replaced"]
        assert zygote.wait(timeout=20) == -signal.SIGTERM
        assert worker.wait(timeout=20) == -signal.SIGTERM
        assert elsewhere.poll() is None and mentions.poll() is None
    finally:
        for p in (zygote, worker, elsewhere, mentions):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_the_store_and_its_wal_are_created_for_this_user_only(tmp_path: Path) -> None:
    db = tmp_path / "var" / "ivr.sqlite3"
    store = CallStore(db)
    store.call_arrived("c1", 1.0, sip_call_id="s", worker="w", from_uri="sip:+1555@x",
                       to_uri="sip:ivr@y", flow="f", flow_version=1)
    files = [db, db.with_name("ivr.sqlite3-wal"), db.with_name("ivr.sqlite3-shm")]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
        f.name: 0o600 for f in files}
    store.close()


def test_a_store_an_older_version_left_readable_to_all_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    CallStore(db).close()
    os.chmod(db, 0o644)
    CallStore(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
