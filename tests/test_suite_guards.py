"""The test run itself always ends: a hung test fails (pytest-timeout), and a thread a test
leaves behind cannot hold the interpreter at exit (tests/conftest.py pytest_unconfigure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

LEAKY = '''
import threading, time
import pytest

def test_leaves_a_thread_behind():
    threading.Thread(target=threading.Event().wait, name="left-behind").start()

@pytest.mark.timeout(1)
def test_hangs():
    time.sleep(120)
'''


def test_a_hung_test_fails_and_a_left_thread_does_not_hold_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         str(tmp_path / "test_leaky.py")],
        cwd=tmp_path, env={"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=100)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "Timeout" in out
    assert "still running after the tests (left-behind)" in out
