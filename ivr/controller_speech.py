"""The controller's speech room: it starts the speech service (``ivr.speech.service``) when
the flow has speech menus, restarts it if it dies, and stops it with the stack.

The service listens on ``<run dir>/speech.sock``, where the workers look for it; while it is
not there (starting, restarting, or failed) speech menus are DTMF-only, so a recogniser
problem never stops a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from .config import Settings
from .logs import log_alarm, log_event
from .speech.service import SPEECH_SOCKET

START_TIMEOUT_S = 60.0
RESTART_DELAY_S = 2.0


def flow_has_speech(settings: Settings) -> bool:
    from .flow import FlowError, load_flow
    from .flow.speech import flow_listens

    try:
        flow, _ = load_flow(settings.paths.flow)
    except FlowError:
        return False  # the zygote reports the flow's problems
    return flow_listens(flow.nodes.values())


class SpeechServiceRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.socket_path = settings.run_dir / SPEECH_SOCKET
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    def command(self) -> list[str]:
        s = self.settings.speech
        cmd = [sys.executable, "-m", "ivr.speech.service", "--socket", str(self.socket_path),
               "--processes", str(s.processes), "--backend", s.backend]
        for language, path in sorted(s.models.items()):
            cmd += ["--model", f"{language}={path}"]
        return cmd

    async def start(self) -> bool:
        """Start the service and wait until it listens; False (logged) if it did not."""
        # its own session, as the pool's and Kamailio's: a Ctrl-C at the terminal reaches the
        # controller only, which stops the service in order (it dies with the controller)
        proc = await asyncio.create_subprocess_exec(*self.command(),
                                                    stdout=asyncio.subprocess.PIPE,
                                                    start_new_session=True)
        self.proc = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if b"ready" not in line:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            rc = await proc.wait()
            log_alarm("speech.failed", how=f"exit {rc}", why="the speech service did not "
                      "start (see its message above); speech menus are DTMF-only")
            self.proc = None
            return False
        log_event("speech.ready", pid=proc.pid, socket=str(self.socket_path),
                  backend=self.settings.speech.backend)
        self._watch = asyncio.ensure_future(self._watch_exit(proc))
        return True

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        rc = await proc.wait()
        if self._stopping:
            return
        log_alarm("speech.exited", pid=proc.pid, how=f"exit {rc}")
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            if not self._stopping and await self.start():
                return

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log_event("speech.stopped", pid=proc.pid)
