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
from .logs import log_event, setup_logging
from .prompts import PromptSet
from .protocol import PROTOCOL_VERSION, decode, encode
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


def serve(settings: Settings, socket_path: Path) -> int:
    try:
        flow, prompts = load_flow_and_prompts(settings)
    except FlowSetError as exc:
        raise StartupError(str(exc)) from exc
    preloaded: Preloaded = (flow, prompts)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(socket_path))
    sock.sendall(encode("hello", role="zygote", protocol=PROTOCOL_VERSION, pid=os.getpid()))
    children: dict[int, int] = {}  # pid -> slot
    buf = b""
    gc.collect()
    gc.freeze()
    log_event("zygote.ready", pid=os.getpid(), flow=flow.name, prompts=sorted(prompts))
    quitting = False
    while True:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            data = sock.recv(65536)
            if not data:
                quitting = True
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
                    quitting = True
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = children.pop(pid, None)
            exit_code = os.waitstatus_to_exitcode(status)
            try:
                sock.sendall(encode("exited", slot=slot, pid=pid,
                                    exit_code=exit_code if exit_code >= 0 else None,
                                    signal=-exit_code if exit_code < 0 else None))
            except OSError:
                pass
        if quitting:
            for pid in children:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            break
    # Wait for the children we asked to drain (bounded by their own drain timeout).
    deadline_polls = int((settings.worker.drain_timeout_s + 15) / 0.1)
    for _ in range(deadline_polls):
        if not children:
            break
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.pop(pid, None)
        else:
            select.select([], [], [], 0.1)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sock.close()
    return 0


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m ivr.zygote CONTROLLER_SOCKET (settings from IVR_CONFIG/env)",
              file=sys.stderr)
        return 2
    settings = load_settings()
    setup_logging(settings.log.level, settings.log.format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller decides when we stop
    try:
        return serve(settings, Path(sys.argv[1]))
    except (StartupError, OSError, json.JSONDecodeError) as exc:
        print(f"ivr zygote: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
