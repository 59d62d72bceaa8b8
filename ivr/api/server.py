"""Serving the agent API inside the controller's running asyncio loop, with uvicorn.

``ApiServer(app, host, port)``: ``await start()`` binds (a taken port is an
:class:`ApiServerError` naming the address) and serves in a task of the current loop;
``await stop()`` stops listening, closes the connections (WebSockets get 1012) within
``shutdown_timeout_s`` and returns. No thread and no signal handlers: uvicorn's own
``serve()`` installs SIGINT/SIGTERM handlers, so this drives its startup / main loop /
shutdown steps directly; the controller owns the signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger("ivr.api")


class ApiServerError(Exception):
    """The API cannot be served; the message names the address and the cause."""


class ApiServer:
    def __init__(self, app: ASGIApp, host: str, port: int, *,
                 shutdown_timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port  # 0: any free port; the bound one is here after start()
        self._config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", ws="websockets-sansio",
            log_config=None, access_log=False, server_header=False,
            timeout_graceful_shutdown=int(max(1, shutdown_timeout_s)))
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._task is not None:
            raise ApiServerError(f"the agent API already serves on {self.url}")
        sock = self._bind()
        self.port = sock.getsockname()[1]
        config = self._config
        if not config.loaded:
            config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._server, self._sock = server, sock
        self._task = asyncio.get_running_loop().create_task(
            self._main_loop(server), name="agent-api")
        log.info("agent API: serving on %s", self.url)

    async def _main_loop(self, server: uvicorn.Server) -> None:
        try:
            await server.main_loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent API: the server loop failed; the API is down")
            raise

    async def stop(self) -> None:
        server, task, sock = self._server, self._task, self._sock
        if server is None or task is None:
            return
        self._server = self._task = self._sock = None
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        try:
            await server.shutdown(sockets=[sock] if sock else None)
        finally:
            if sock is not None:
                sock.close()
        log.info("agent API: stopped on %s", self.url)

    def _bind(self) -> socket.socket:
        try:
            family = (socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6
                      else socket.AF_INET)
        except ValueError:
            raise ApiServerError(f"agent API address {self.host!r} is not an IP "
                                 "address (http.bind_address)") from None
        try:
            sock = socket.create_server((self.host, self.port), family=family,
                                        reuse_port=False)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ApiServerError(
                    f"the agent API cannot listen on {self.url}: the port is taken by "
                    "another program (set http.port / IVR_HTTP_PORT, or stop the other "
                    "program)") from exc
            raise ApiServerError(f"the agent API cannot listen on {self.url}: "
                                 f"{exc.strerror or exc}") from exc
        sock.setblocking(False)
        return sock
