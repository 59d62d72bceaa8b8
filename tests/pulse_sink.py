"""A PulseAudio daemon of the test's own with a null sink (a virtual headset), so that
PortAudio's device list and streams are real; stopped on the way out."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def pulse_null_sink(tmp_path: Path) -> Iterator[str | None]:
    """Yields the daemon's PULSE_SERVER, or None when pulseaudio is not installed."""
    binary = shutil.which("pulseaudio")
    if binary is None:
        yield None
        return
    short = Path(f"/tmp/sp-pa-{os.getpid()}-{time.monotonic_ns()}")  # a socket path is short
    short.mkdir()
    socket = short / "native"
    script = tmp_path / "default.pa"
    script.write_text(f"load-module module-native-protocol-unix auth-anonymous=1 "
                      f"socket={socket}\nload-module module-null-sink sink_name=headset\n")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(short)}
    proc = subprocess.Popen([binary, "-n", "-F", str(script), "--daemonize=no",
                             "--exit-idle-time=-1", "--disallow-exit"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket.exists(), "pulseaudio did not start"
        yield f"unix:{socket}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(short, ignore_errors=True)
