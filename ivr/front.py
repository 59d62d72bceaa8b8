"""The SIP front as the controller sees it: Kamailio over the pool's worker slots."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence

from .config import Settings
from .kamailio import Destination, KamailioConfig, KamailioError, KamailioProcess
from .logs import log_event

log = logging.getLogger("ivr.front")


class FrontError(Exception):
    pass


class Front:
    """Kamailio's dispatcher set follows the pool: a worker is added when it says hello,
    disabled while it drains, marked inactive when it dies (probing would notice only after
    a few seconds), and active again when its replacement is up."""

    def __init__(self, process: KamailioProcess, members: set[str], max_load: int) -> None:
        self.process = process
        self.members = members
        self.max_load = max_load
        self.stopping = False
        self._lock = asyncio.Lock()

    async def worker_up(self, uri: str) -> None:
        async with self._lock:
            try:
                if uri in self.members:
                    await asyncio.to_thread(self.process.set_state, uri, "active")
                else:
                    await asyncio.to_thread(self.process.add_destination,
                                            Destination(uri, self.max_load))
                    self.members.add(uri)
            except KamailioError as exc:
                log.error("could not add %s to the front: %s", uri, exc)

    async def worker_out(self, uri: str, draining: bool) -> None:
        if uri not in self.members:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self.process.set_state, uri,
                                        "disabled" if draining else "inactive")
            except KamailioError as exc:
                log.error("could not take %s out of the front: %s", uri, exc)

    async def stop(self) -> None:
        self.stopping = True
        async with self._lock:  # after a restart under way
            pid = self.process.pid
            rc = await asyncio.to_thread(self.process.stop)
        log_event("front.stopped", pid=pid, exit_code=rc)

    async def wait_exit(self) -> int | None:
        """Wait until the Kamailio running now exits; its return code (negative: the
        signal that killed it)."""
        process = self.process
        pid = process.pid
        if pid is None:
            return process.returncode
        loop = asyncio.get_running_loop()
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            pidfd = None  # no pidfd (kernel < 5.3): poll below
        if pidfd is not None:
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        while process.running:
            await asyncio.sleep(0.2)
        return process.returncode

    async def restart(self, serving: Callable[[], Sequence[str]]) -> None:
        """Start Kamailio again after it died, on the same files, with the dispatcher set
        as the pool is now: ``serving()`` workers active, the other slots disabled. The
        dispatcher state calls queued meanwhile run after it, on the new process."""
        async with self._lock:
            if self.stopping:
                return
            await asyncio.to_thread(self.process.stop)  # reap it and what is left of it
            live = set(serving())
            old = self.process.config
            cfg = dataclasses.replace(old, destinations=[
                dataclasses.replace(d, disabled=d.uri not in live) for d in old.destinations])
            process = KamailioProcess(cfg, binary=self.process.binary,
                                      kamcmd=self.process.kamcmd)
            try:
                await asyncio.to_thread(process.start)
            except KamailioError as exc:
                raise FrontError(f"Kamailio (the SIP front) cannot restart: {exc}") from exc
            self.process = process


async def start_front(settings: Settings, worker_uris: Sequence[str], max_load: int,
                      serving: Sequence[str] = ()) -> Front:
    """Start Kamailio on sip.bind_address:sip.port. Every worker slot is listed from the
    start (so growing the pool never needs Kamailio's rate-limited dispatcher.add); slots
    with no serving worker are listed disabled and set active when their worker is up."""
    cfg = KamailioConfig(
        listen_address=settings.sip.bind_address,
        port=settings.sip.port,
        transports=tuple(settings.sip.transports),
        destinations=[Destination(uri, max_load, disabled=uri not in set(serving))
                      for uri in worker_uris],
        run_dir=settings.run_dir / "kamailio",
        probe_interval_s=settings.front.probe_interval_s,
        no_reply_timeout_ms=settings.front.no_reply_timeout_ms,
        children=settings.front.children,
        log_level="notice",
    )
    process = KamailioProcess(cfg)
    try:
        await asyncio.to_thread(process.start)
    except KamailioError as exc:
        raise FrontError(f"Kamailio (the SIP front) cannot start: {exc}") from exc
    log_event("front.ready", sip=cfg.sip_uri, destinations=len(cfg.destinations),
              pid=process.pid, log=str(process.log_path))
    return Front(process, set(worker_uris), max_load)
