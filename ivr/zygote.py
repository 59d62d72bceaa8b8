"""The warm parent of the call workers.

Started by the controller (``python -m ivr.zygote``). It imports pjsua2 and the worker code,
loads and converts the flow and prompts once, freezes the garbage collector's view of all
that (so forked children share those pages), then waits for ``spawn`` commands and forks one
worker per command. A child is a finished worker in a few milliseconds and costs only the
pages it writes. The zygote reports each child's exit, and when the controller goes away it
asks its children to drain and exits.

It has no threads and no event loop of its own (forking a threaded process is unsafe), just a
blocking socket and ``waitpid``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import ipaddress
import json
import logging
import os
import select
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import media.phone  # noqa: F401  (imported for the children: pjsua2 is loaded once, here)

from .config import Settings, load_settings
from .flow import Flow
from .flowset import FlowSetError, load_flow_and_prompts
from .logs import log_alarm, log_event, log_fallback_path, setup_logging
from .prompts import PromptSet
from .protocol import PROTOCOL_VERSION, decode, encode
from .supervise import find_stack_processes, signal_if_ours, stop_kamailio, wait_gone
from .worker import StartupError, Worker

log = logging.getLogger("ivr.zygote")


def front_source(base: Settings) -> str:
    """Where Kamailio's requests to the workers come from: its listening socket (UDP; a
    wildcard bind sends from the workers' own address)."""
    host = base.sip.bind_address
    if ipaddress.ip_address(host).is_unspecified:
        host = base.pool.worker_address
    return f"[{host}]:{base.sip.port}" if ":" in host else f"{host}:{base.sip.port}"


def worker_settings(base: Settings, name: str, sip_port: int, rtp_port_start: int,
                    rtp_port_range: int, address: str) -> Settings:
    worker: dict[str, Any] = {"name": name}
    if base.front.enabled:  # pooled workers take SIP only from the front (its limits, its count)
        worker["trusted_sources"] = [front_source(base)]
        if base.worker.outbound_proxy is None:  # agent legs too go through the front
            worker["outbound_proxy"] = front_source(base)
    return base.model_copy(update={
        "worker": base.worker.model_copy(update=worker),
        "sip": base.sip.model_copy(update={"port": sip_port, "bind_address": address}),
        "rtp": base.rtp.model_copy(update={"port_start": rtp_port_start,
                                           "port_range": rtp_port_range}),
    })


Preloaded = tuple[Flow, dict[str, PromptSet]]


def _run_child(sock: socket.socket, settings: Settings, preloaded: Preloaded,
               socket_path: Path, cmd: dict[str, Any]) -> None:
    """In the forked child: become a worker. Never returns."""
    code = 0
    try:
        sock.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        faulthandler.enable()
        gc.unfreeze()
        ws = worker_settings(settings, str(cmd["name"]), int(cmd["sip_port"]),
                             int(cmd["rtp_port_start"]), int(cmd["rtp_port_range"]),
                             str(cmd.get("address", settings.pool.worker_address)))
        worker = Worker(ws, preloaded=preloaded, controller_socket=socket_path,
                        slot=int(cmd["slot"]))
        asyncio.run(worker.run())
    except StartupError as exc:
        log.error("worker %s cannot start: %s", cmd.get("name"), exc)
        code = 2
    except BaseException:
        log.exception("worker %s failed", cmd.get("name"))
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


class _Quit:
    """Why the zygote stops: the controller said ``quit``, its socket closed (the controller
    died), or SIGTERM."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.controller_lost = False

    def on_sigterm(self, _sig: int, _frame: object) -> None:
        self.reason = self.reason or "SIGTERM"


def _how(status: int) -> dict[str, int | None]:
    code = os.waitstatus_to_exitcode(status)
    return {"exit_code": code if code >= 0 else None, "signal": -code if code < 0 else None}


def serve(settings: Settings, socket_path: Path) -> int:
    try:
        flow, prompts = load_flow_and_prompts(settings)
    except FlowSetError as exc:
        raise StartupError(str(exc)) from exc
    preloaded: Preloaded = (flow, prompts)
    quit_ = _Quit()
    signal.signal(signal.SIGTERM, quit_.on_sigterm)
    controller_pid = os.getppid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(socket_path))
    sock.sendall(encode("hello", role="zygote", protocol=PROTOCOL_VERSION, pid=os.getpid()))
    children: dict[int, int] = {}  # pid -> slot
    buf = b""
    gc.collect()
    gc.freeze()
    log_event("zygote.ready", pid=os.getpid(), flow=flow.name, prompts=sorted(prompts))
    while quit_.reason is None:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            data = sock.recv(65536)
            if not data:
                quit_.reason = "the controller went away"
                quit_.controller_lost = True
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = decode(line)
                if msg["type"] == "spawn":
                    pid = os.fork()
                    if pid == 0:
                        _run_child(sock, settings, preloaded, socket_path, msg)
                    children[pid] = int(msg["slot"])
                    sock.sendall(encode("spawned", slot=msg["slot"], pid=pid))
                elif msg["type"] == "reload":
                    try:
                        preloaded = load_flow_and_prompts(settings)
                    except FlowSetError as exc:
                        log_event("zygote.reload_refused", error=str(exc))
                    else:
                        gc.collect()
                        gc.freeze()
                        log_event("zygote.reloaded", flow=preloaded[0].name,
                                  flow_version=preloaded[0].version)
                elif msg["type"] == "quit":
                    quit_.reason = "asked by the controller"
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = children.pop(pid, None)
            try:
                sock.sendall(encode("exited", slot=slot, pid=pid, **_how(status)))
            except OSError:
                log_event("pool.worker_exit", slot=slot, pid=pid, **_how(status))
    if quit_.controller_lost:
        log_alarm("zygote.controller_lost", controller_pid=controller_pid,
                  workers=len(children), drain_timeout_s=settings.worker.drain_timeout_s,
                  then="the workers finish their calls, then the front is stopped")
    else:
        log_event("zygote.stopping", reason=quit_.reason, workers=len(children))
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    # Wait for the children we asked to drain (bounded by their own drain timeout).
    deadline_polls = int((settings.worker.drain_timeout_s + 15) / 0.1)
    for _ in range(deadline_polls):
        if not children:
            break
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            log_event("pool.worker_exit", slot=children.pop(pid, None), pid=pid, **_how(status))
        else:
            select.select([], [], [], 0.1)
    for pid in children:
        log_alarm("zygote.kill_worker", pid=pid, slot=children[pid],
                  why=f"still running {settings.worker.drain_timeout_s + 15:g} s after SIGTERM")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sock.close()
    if quit_.controller_lost:
        # Workers an earlier zygote forked (it died; the controller started this one) drain
        # too: their BYEs need Kamailio as much as our children's did.
        others = [p.pid for p in find_stack_processes(settings.run_dir)
                  if p.role in ("worker", "zygote")]
        if others:
            log_event("zygote.waiting", pids=others, why="workers of an earlier zygote")
            for pid in wait_gone(others, settings.run_dir, settings.worker.drain_timeout_s + 15):
                signal_if_ours(pid, settings.run_dir, signal.SIGKILL)
        # Nobody else will: Kamailio routed the draining calls' BYEs until now.
        stopped = stop_kamailio(settings.run_dir)
        log_event("zygote.front_stopped", pids=stopped)
    log_event("zygote.stopped", reason=quit_.reason)
    return 0


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m ivr.zygote CONTROLLER_SOCKET (settings from IVR_CONFIG/env)",
              file=sys.stderr)
        return 2
    faulthandler.enable()  # stays on in the forked workers
    settings = load_settings()
    setup_logging(settings.log.level, settings.log.format,
                  fallback=log_fallback_path(settings.paths.var_dir))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller decides when we stop
    try:
        return serve(settings, Path(sys.argv[1]))
    except (StartupError, OSError, json.JSONDecodeError) as exc:
        print(f"ivr zygote: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        log.critical("the zygote failed", exc_info=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
