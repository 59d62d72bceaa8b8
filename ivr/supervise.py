"""The stack's own processes: the var-dir lock, and finding (and ending) what a dead
controller left behind.

One stack per var dir. The controller takes an exclusive ``flock`` on ``var/run/stack.lock``
before it touches anything and holds it for its whole life (the kernel drops it when the
process dies, however it dies); a second ``ivr run`` on the same var dir is refused with the
running controller's pid, which the lock file holds.

A controller killed with SIGKILL cannot stop its children. The zygote notices (its socket
closes), lets its workers drain their calls and then stops Kamailio itself (see
``ivr/zygote.py``). Whatever is still running when the next controller starts is found here,
by the exact command line each process of this var dir has::

    zygote and workers   <python> -m ivr.zygote <var>/run/controller.sock   (workers are forks)
    Kamailio             /usr/sbin/kamailio ... -f <var>/run/kamailio/kamailio.cfg ...

Pid files (``zygote.pid``, ``kamailio/kamailio.pid``) only name the roles; a pid is never
signalled unless ``/proc/PID/cmdline`` still matches, so a reused pid is safe.

Also here: :func:`exit_how` (how a child ended, as the logs say it) and
:func:`controlling_terminal` (a SIGHUP after the terminal hung up stops the stack).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "stack.lock"
ZYGOTE_PID_FILE = "zygote.pid"
KAMAILIO_DIR = "kamailio"
KAMAILIO_PID_FILE = "kamailio.pid"
KAMAILIO_CFG = "kamailio.cfg"
SOCKET_FILE = "controller.sock"
SPEECH_SOCKET = "speech.sock"  # ivr.speech.service.SPEECH_SOCKET (a test keeps them equal)

RUN_DIR_MODE = 0o700  # var/run: sockets, pid files, Kamailio's log (callers' numbers)


class StackRunningError(Exception):
    """Another controller holds this var dir."""

    def __init__(self, lock_path: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"controller pid {pid}" if pid else "its pid is not in the lock file"
        super().__init__(
            f"a stack is already running on {lock_path.parent.parent} ({who}); "
            "stop it first (Ctrl-C in its terminal, or kill -TERM "
            f"{pid if pid else 'its controller'}) or give this one another paths.var_dir")


class StaleProcessError(Exception):
    """Processes a dead controller left behind could not be stopped."""


def make_run_dir(run_dir: Path) -> None:
    """Create ``var/run`` (and ``var``) readable by this user only: it holds the control
    sockets and Kamailio's log, which has callers' numbers in it."""
    run_dir.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    run_dir.mkdir(mode=RUN_DIR_MODE, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(run_dir, RUN_DIR_MODE)  # one made by an older version was 0755


class StackLock:
    """The exclusive lock on a var dir, held until :meth:`release` or the process's end."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        make_run_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StackRunningError(self.path, int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: removing it would race a next start
            self._fd = None


# ---- the processes of a var dir, by command line


@dataclass(frozen=True)
class StackProcess:
    pid: int
    role: str  # "zygote", "worker", "kamailio"

    def __str__(self) -> str:
        return f"{self.role} {self.pid}"


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None  # a zombie, or a kernel thread
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _is_zygote(argv: list[str], socket_path: str) -> bool:
    return argv[1:4] == ["-m", "ivr.zygote", socket_path]


def _is_kamailio(argv: list[str], cfg_path: str) -> bool:
    return (Path(argv[0]).name == "kamailio" and "-f" in argv
            and argv.index("-f") + 1 < len(argv) and argv[argv.index("-f") + 1] == cfg_path)


def _is_speech(argv: list[str], socket_path: Path) -> bool:
    return (argv[1:4] == ["-m", "ivr.speech.service", "--socket"] and len(argv) > 4
            and Path(argv[4]).resolve() == socket_path)


def identify(pid: int, run_dir: Path) -> str | None:
    """``"pool"`` (the zygote or a worker), ``"kamailio"`` or ``"speech"`` (the speech
    service and its children) if ``pid`` is one of this var dir's processes now, else
    None."""
    argv = _cmdline(pid)
    if argv is None:
        return None
    run_dir = run_dir.resolve()
    if _is_zygote(argv, str(run_dir / SOCKET_FILE)):
        return "pool"
    if _is_speech(argv, run_dir / SPEECH_SOCKET):
        return "speech"
    if _is_kamailio(argv, str(run_dir / KAMAILIO_DIR / KAMAILIO_CFG)):
        return "kamailio"
    return None


def find_stack_processes(run_dir: Path, exclude: Iterable[int] = ()) -> list[StackProcess]:
    """Every live process of this var dir's stack but the controllers (which hold the lock),
    in pid order."""
    skip = {os.getpid(), *exclude}
    zygote_pid = _read_pid(run_dir / ZYGOTE_PID_FILE)
    kamailio_pid = _read_pid(run_dir / KAMAILIO_DIR / KAMAILIO_PID_FILE)
    found: list[StackProcess] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        pid = int(entry.name)
        kind = identify(pid, run_dir)
        if kind == "pool":
            found.append(StackProcess(pid, "zygote" if pid == zygote_pid else "worker"))
        elif kind == "kamailio":
            found.append(StackProcess(
                pid, "kamailio" if pid == kamailio_pid else "kamailio child"))
        elif kind == "speech":
            found.append(StackProcess(pid, "speech"))
    return sorted(found, key=lambda p: p.pid)


def signal_if_ours(pid: int, run_dir: Path, sig: int) -> bool:
    """Send ``sig`` to ``pid`` only if it is still one of this var dir's processes."""
    if identify(pid, run_dir) is None:
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_gone(pids: Iterable[int], run_dir: Path, timeout_s: float,
              poll_s: float = 0.1) -> list[int]:
    """Wait until none of ``pids`` is a process of this var dir; return those still there."""
    left = list(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in left if identify(p, run_dir) is not None]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll_s)


def stop_kamailio(run_dir: Path, timeout_s: float = 10.0) -> list[int]:
    """Stop this var dir's Kamailio (not a child of the caller): SIGTERM to its main process,
    then SIGKILL to whatever of it is left. Returns the pids it found."""
    procs = [p for p in find_stack_processes(run_dir) if p.role.startswith("kamailio")]
    main = [p.pid for p in procs if p.role == "kamailio"]
    for pid in main:
        signal_if_ours(pid, run_dir, signal.SIGTERM)
    left = wait_gone([p.pid for p in procs], run_dir, timeout_s if main else 0.0)
    for pid in left:
        signal_if_ours(pid, run_dir, signal.SIGKILL)
    wait_gone(left, run_dir, 5.0)
    return [p.pid for p in procs]


def replace_stale(run_dir: Path, drain_timeout_s: float,
                  log: Callable[..., None]) -> list[StackProcess]:
    """End what a dead controller of this var dir left running, gently: the workers get
    SIGTERM and up to ``drain_timeout_s`` (+15 s) to finish their calls (a worker whose
    controller died is draining already), then the zygote and Kamailio get SIGTERM, then
    anything left SIGKILL. Raises :class:`StaleProcessError` if something survives that."""
    stale = find_stack_processes(run_dir)
    if not stale:
        return []
    log("controller.stale_found", processes=", ".join(map(str, stale)),
        drain_timeout_s=drain_timeout_s)
    workers = [p.pid for p in stale if p.role == "worker"]
    for pid in workers:
        signal_if_ours(pid, run_dir, signal.SIGTERM)
    left = wait_gone(workers, run_dir, drain_timeout_s + 15)
    for pid in left:
        signal_if_ours(pid, run_dir, signal.SIGKILL)
    others = [p.pid for p in stale if p.role in ("zygote", "kamailio", "speech")]
    for pid in others:
        signal_if_ours(pid, run_dir, signal.SIGTERM)
    rest = [p.pid for p in stale]
    left = wait_gone(rest, run_dir, 10.0)
    for pid in left:
        signal_if_ours(pid, run_dir, signal.SIGKILL)
    left = wait_gone(left, run_dir, 5.0)
    if left:
        raise StaleProcessError(
            "processes of an earlier stack on this var dir could not be stopped: "
            + ", ".join(str(p) for p in stale if p.pid in left) + "; stop them by hand")
    log("controller.stale_replaced", processes=", ".join(map(str, stale)))
    return stale


def controlling_terminal() -> str | None:
    """The controlling terminal's name; None without one, or once it has hung up (its
    window or session closed)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return None
    try:
        return os.ttyname(fd)
    except OSError:
        return "/dev/tty"
    finally:
        os.close(fd)


def exit_how(returncode: int | None) -> str:
    """``exit code 0`` / ``killed by signal 9 (SIGKILL)``, from a Popen-style return code."""
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "?"
        return f"killed by signal {-returncode} ({name})"
    return f"exit code {returncode}"
