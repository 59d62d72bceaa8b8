"""Who may speak on the controller's socket: only the zygote it started and the workers
that zygote forked for it.

The kernel tells who is at the other end of a Unix stream socket (``SO_PEERCRED``: the pid,
uid and gid of the process that connected), and no peer can forge that. The controller knows
the zygote's pid (it started it) and each worker's pid (the zygote reports every fork in
``spawned`` before the child can say hello), so :func:`refusal` only compares numbers. What
a peer claims in its ``hello`` (``pid``, ``slot``) is never taken on trust.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import Any

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (Linux)


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(writer: asyncio.StreamWriter) -> PeerCredentials | None:
    """The process at the other end of a Unix socket connection, from the kernel."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def refusal(hello: dict[str, Any], peer: PeerCredentials | None, *, zygote_pid: int | None,
            zygote_connected: bool, worker_pid: int | None) -> str | None:
    """Why this hello is refused, or None if the peer is who it says it is.

    ``worker_pid`` is the pid the zygote reported as forked for the slot the hello names.
    """
    if peer is None:
        return "the peer's credentials are unknown"
    if hello.get("role") == "zygote":
        if zygote_pid is None or peer.pid != zygote_pid:
            return f"it is not the zygote this controller started (pid {zygote_pid})"
        if zygote_connected:
            return "a zygote is already connected"
        return None
    if hello.get("role") != "worker":
        return f"unknown role {hello.get('role')!r}"
    if worker_pid is None:
        return f"no worker was forked for slot {hello.get('slot')!r}"
    if peer.pid != worker_pid:
        return f"slot {hello.get('slot')!r} belongs to the worker with pid {worker_pid}"
    return None
