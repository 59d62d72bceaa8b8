"""The SIP front as the controller sees it: Kamailio over the pool's worker slots."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

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

    async def end_calls_of(self, uri: str) -> int:
        """End the calls of a worker that died: Kamailio sends BYE to each caller (who would
        otherwise hear silence, and get 481 for their own BYE) and to the worker."""
        try:
            ended = await asyncio.to_thread(self.process.end_calls_of, uri)
        except KamailioError as exc:
            log.error("could not end the calls of %s at the front: %s", uri, exc)
            return 0
        if ended:
            log_event("front.calls_ended", worker=uri, calls=ended)
        return ended

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


def read_credentials(path: Path) -> tuple[tuple[str, str], ...]:
    """``username:password`` per line (``#`` comments, blank lines skipped)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FrontError(f"front.credentials_file {path}: cannot read it: {exc}") from exc
    users: list[tuple[str, str]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise FrontError(f"{path}:{n}: expected username:password")
        users.append((user.strip(), password))
    if not users:
        raise FrontError(f"front.credentials_file {path}: no username:password line in it")
    return tuple(users)


def front_max_calls(settings: Settings) -> int:
    """front.max_calls, or by default what the pool can hold at its largest."""
    if settings.front.max_calls is not None:
        return settings.front.max_calls
    return settings.pool.max_workers * settings.worker.max_calls


def front_max_calls_per_source(settings: Settings) -> int:
    """front.max_calls_per_source, or by default half of the front's calls (at least 1):
    a flood from one address leaves the other half to everyone else."""
    if settings.front.max_calls_per_source is not None:
        return settings.front.max_calls_per_source
    return max(1, front_max_calls(settings) // 2)


def _front_config(settings: Settings, worker_uris: Sequence[str], max_load: int,
                  serving: Sequence[str],
                  credentials: tuple[tuple[str, str], ...]) -> KamailioConfig:
    return KamailioConfig(
        listen_address=settings.sip.bind_address,
        port=settings.sip.port,
        transports=tuple(settings.sip.transports),
        tls_port=settings.sip.tls_port,
        tls_cert=settings.sip.tls_cert,
        tls_key=settings.sip.tls_key,
        destinations=[Destination(uri, max_load, disabled=uri not in set(serving))
                      for uri in worker_uris],
        run_dir=settings.run_dir / "kamailio",
        probe_interval_s=settings.front.probe_interval_s,
        no_reply_timeout_ms=settings.front.no_reply_timeout_ms,
        children=settings.front.children,
        log_level="notice",
        max_calls=front_max_calls(settings),
        max_calls_per_source=front_max_calls_per_source(settings),
        retry_after_s=settings.front.retry_after_s,
        store_path=settings.db_path,  # refused calls go to its blocked_calls table
        allowed_networks=tuple(settings.front.allowed_networks),
        caller_auth=settings.front.caller_auth,
        auth_realm=settings.front.auth_realm,
        credentials=credentials,
        agent_domain=settings.agent_domain,  # agents' phones register here (agents_sip)
    )


async def start_front(settings: Settings, worker_uris: Sequence[str], max_load: int,
                      serving: Sequence[str] = ()) -> Front:
    """Start Kamailio on sip.bind_address:sip.port. Every worker slot is listed from the
    start (so growing the pool never needs Kamailio's rate-limited dispatcher.add); slots
    with no serving worker are listed disabled and set active when their worker is up."""
    credentials: tuple[tuple[str, str], ...] = ()
    if settings.front.caller_auth == "digest" and settings.front.credentials_file is not None:
        credentials = read_credentials(settings.front.credentials_file)
    try:
        cfg = _front_config(settings, worker_uris, max_load, serving, credentials)
    except KamailioError as exc:
        raise FrontError(f"Kamailio (the SIP front) cannot start: {exc}") from exc
    process = KamailioProcess(cfg)
    try:
        await asyncio.to_thread(process.start)
    except KamailioError as exc:
        raise FrontError(f"Kamailio (the SIP front) cannot start: {exc}") from exc
    if not cfg.allowed_networks and cfg.caller_auth == "none":
        log.warning("the SIP front takes calls from any address that reaches %s "
                    "(front.allowed_networks is empty, front.caller_auth is none)",
                    cfg.sip_uri)
    log_event("front.ready", sip=cfg.sip_uri, destinations=len(cfg.destinations),
              pid=process.pid, log=str(process.log_path), max_calls=cfg.max_calls,
              max_calls_per_source=cfg.max_calls_per_source or "no limit",
              callers=", ".join(cfg.allowed_networks) or "any address",
              caller_auth=cfg.caller_auth, tls_port=cfg.tls_port,
              agents=f"sip:ID@{cfg.agent_domain}")
    return Front(process, set(worker_uris), max_load)
