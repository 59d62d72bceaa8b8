"""The ``ivr`` commands find the project's files from any directory, and never mistake a
missing store for an empty one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ivr(cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_flow_check_from_another_directory_finds_the_shipped_prompts(tmp_path: Path) -> None:
    # the default var dir is the project's; the cache it writes is the one make run uses
    result = ivr(tmp_path, "flow", "check", str(ROOT / "ivr" / "flows" / "default.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok (flow 'default'" in result.stdout
    assert not (tmp_path / "var").exists()


def test_calls_with_a_missing_store_says_so_and_creates_nothing(tmp_path: Path) -> None:
    var = tmp_path / "no-such-var"
    for args in (("calls",), ("call", "abc")):
        result = ivr(tmp_path, *args, IVR_PATHS_VAR_DIR=str(var))
        assert result.returncode == 1
        assert f"no call store at {var / 'ivr.sqlite3'}" in result.stderr
    assert not var.exists()


def test_calls_with_a_relative_var_dir_in_a_settings_file_reads_that_store(
        tmp_path: Path) -> None:
    from ivr.store import CallStore

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "settings.yaml").write_text("paths:\n  var_dir: state\n")
    store = CallStore(conf / "state" / "ivr.sqlite3")
    store.call_arrived("c1", 1_700_000_000.0, sip_call_id="sip-1", worker="w0",
                       from_uri="sip:alice@x", to_uri="sip:ivr@x", flow="f", flow_version=1)
    store.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = ivr(elsewhere, "--config", str(conf / "settings.yaml"), "calls")
    assert result.returncode == 0, result.stderr
    assert "c1" in result.stdout
