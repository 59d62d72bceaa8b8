"""scripts/setup: one install serves `make test` and `make run`, and pip's chatter stays off
the terminal. A stand-in for .venv's python records what setup asks of pip."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../calls.log"
echo "BuildBackendWarning: something setuptools says" >&2
[ -f "$(dirname "$0")/../fail" ] && exit 1
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    py = bin_dir / "python"
    py.write_text(FAKE_PYTHON)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def setup(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(project / "scripts" / "setup"), *args], cwd=project,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))


def installs(project: Path) -> list[str]:
    log = project / ".venv" / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [ln for ln in lines if ln.startswith("-m pip install -q -e")]


def test_run_after_test_installs_nothing_again(project: Path) -> None:
    first = setup(project, "--test")
    assert first.returncode == 0, first.stderr
    assert installs(project) == ["-m pip install -q -e .[test]"]
    assert "Warning" not in first.stdout + first.stderr  # kept in .venv/setup.log
    second = setup(project)  # make run
    assert second.returncode == 0, second.stderr
    assert (second.stdout, second.stderr) == ("", "")
    assert installs(project) == ["-m pip install -q -e .[test]"]


def test_test_after_run_adds_the_test_extras_once(project: Path) -> None:
    assert setup(project).returncode == 0
    assert setup(project, "--test").returncode == 0
    assert setup(project, "--test").returncode == 0
    assert setup(project).returncode == 0
    assert installs(project) == ["-m pip install -q -e .", "-m pip install -q -e .[test]"]


def test_a_failed_install_shows_pip_output_and_fails(project: Path) -> None:
    (project / ".venv" / "fail").touch()
    result = setup(project, "--test")
    assert result.returncode == 1
    assert "BuildBackendWarning" in result.stderr  # the log, shown because it failed
    assert "installing the Python packages failed" in result.stderr
    assert not (project / ".venv" / ".installed").exists()
