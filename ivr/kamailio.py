"""The SIP front: Kamailio's configuration, rendered from settings, and its process.

Kamailio is the one SIP address callers see. Its dispatcher spreads INVITEs over the call
workers by call load (algorithm 10, each worker's ``maxload``), probes them with OPTIONS,
and on 408/486/5xx or silence moves the call to the next worker; it record-routes, so every
in-dialog request (and the BYE that ends the call's load) passes through it. See
``docs/kamailio.md`` for the routing and each setting.

    KamailioConfig --render()--> {"kamailio.cfg": ..., "dispatcher.list": ...}

    KamailioProcess(config)
        .start()   write files, ``kamailio -c`` (refused: KamailioConfigError with its
                   message), run ``kamailio -DD -E`` as a child, wait until it answers OPTIONS
        .dispatcher_list() / .set_state() / .add_destination() / .remove_destination()
        .reload_dispatcher()   via ``kamcmd`` on the ctl socket in ``run_dir``
        .calls_of(uri) / .end_calls_of(uri)   a worker's calls (dialog module), BYE both ways
        .stop()    SIGTERM to its PID, then wait (SIGKILL to its process group if it hangs)

Errors::

    KamailioError
    ├── KamailioConfigError   kamailio -c refused the config, or the settings are unusable
    ├── KamailioStartError    it exited or did not answer in time
    └── KamailioRpcError      kamcmd failed or Kamailio answered with a fault
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import os
import re
import signal
import socket
import sqlite3
import string
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

KAMAILIO_BIN = Path("/usr/sbin/kamailio")
KAMCMD_BIN = Path("/usr/sbin/kamcmd")
MODULE_DIR = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")

CFG_FILE = "kamailio.cfg"
LIST_FILE = "dispatcher.list"
ADDRESS_FILE = "address.list"
AUTH_DIR = "authdb"  # db_text directory: the subscriber table (HA1 only)
DIALOG_DB = "dialogs.sqlite3"  # the dialog module's table, so calls outlive a restart
# Kamailio's own SQLite schema (package kamailio-sqlite-modules)
SQLITE_SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
CTL_SOCKET = "kamailio.ctl"
PID_FILE = "kamailio.pid"
LOG_FILE = "kamailio.log"
RUN_DIR_MODE = 0o700
LOG_MODE = 0o600

Transport = Literal["udp", "tcp"]
LogLevel = Literal["error", "warning", "notice", "info", "debug"]
DestinationState = Literal["active", "inactive", "trying", "disabled"]

# Kamailio's debug= levels (L_ERR .. L_DBG).
_DEBUG_LEVELS: dict[str, int] = {"error": -1, "warning": 0, "notice": 1, "info": 2, "debug": 3}
# dispatcher.set_state codes; "p" keeps the OPTIONS probing on.
_STATE_CODES: dict[str, str] = {"active": "ap", "inactive": "ip", "disabled": "d"}
_STATE_LETTERS: dict[str, DestinationState] = {
    "A": "active", "I": "inactive", "T": "trying", "D": "disabled",
}
_UNSAFE = re.compile(r"[\"\\\s]")  # would break a quoted cfg string or a dispatcher.list field
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less the NUL


class KamailioError(Exception):
    """Base of the errors of the SIP front."""


class KamailioConfigError(KamailioError):
    """The settings cannot make a working config, or ``kamailio -c`` refused it."""


class KamailioStartError(KamailioError):
    """Kamailio exited while starting or did not answer OPTIONS in time."""


class KamailioRpcError(KamailioError):
    """A control command (kamcmd over the ctl socket) failed."""


@dataclass(frozen=True)
class Destination:
    """One call worker in a dispatcher set: ``sip:127.0.0.1:5101``, at most ``max_load`` calls
    (0: no limit)."""

    uri: str
    max_load: int
    set_id: int = 1
    disabled: bool = False  # listed, but takes no calls until set active

    def __post_init__(self) -> None:
        if not re.fullmatch(r"sips?:[^\s\"\\#]+", self.uri):
            raise KamailioConfigError(f"destination {self.uri!r} is not a SIP URI")
        if self.max_load < 0:
            raise KamailioConfigError(f"destination {self.uri}: max_load must be >= 0")
        if self.set_id < 0:
            raise KamailioConfigError(f"destination {self.uri}: set_id must be >= 0")

    @property
    def duid(self) -> str:
        """The unique id call-load dispatching counts calls under (the URI, made token-safe)."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.uri.split(":", 1)[1])

    def list_line(self) -> str:
        """The ``dispatcher.list`` line: set, URI, flags 8 (probing), or 12 (probing but
        disabled by the operator: an empty pool slot), priority 0, attributes."""
        flags = 12 if self.disabled else 8
        return f"{self.set_id} {self.uri} {flags} 0 duid={self.duid};maxload={self.max_load}"


@dataclass(frozen=True, kw_only=True)
class KamailioConfig:
    """Everything the front needs; ``render`` turns it into Kamailio's files."""

    listen_address: str = "127.0.0.1"
    port: int = 5060
    transports: tuple[Transport, ...] = ("udp", "tcp")
    # SIP over TLS for callers on this port (None: none), with a PEM certificate (chain)
    # and its key; Kamailio terminates TLS and reaches the workers over UDP
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    destinations: Sequence[Destination] = ()
    run_dir: Path = Path("var/kamailio")  # cfg, dispatcher.list, ctl socket, pid, log
    set_id: int = 1  # the dispatcher set INVITEs go to
    probe_interval_s: int = 2  # OPTIONS to every worker this often
    probe_threshold: int = 2  # failed probes (or silent INVITEs) before a worker is inactive
    no_reply_timeout_ms: int = 2000  # no reply at all from a worker: try the next one
    answer_timeout_s: int = 10  # provisional reply but no final one: try the next one
    retry_after_s: int = 5  # Retry-After on the front's own 503
    call_expire_s: int = 7200  # a call's load is dropped after this even without BYE
    # pike flood control: at most pike_max_requests per pike_sampling_s from one source IP
    # (blocking starts between 1x and 3x that for IPv4); sources in pike_exempt and the
    # workers themselves are never counted. Loopback is exempt so that load tests and the
    # workers on 127.0.0.1 are not throttled; give a carrier's trunk addresses here too.
    pike_sampling_s: int = 2
    pike_max_requests: int = 200
    pike_remove_latency_s: int = 120
    pike_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    max_forwards: int = 10  # Max-Forwards set when a request has none
    # admission: calls up or being set up at once, in all and from one source address
    # (0: no limit); past either the front answers 503 + Retry-After
    max_calls: int = 0
    max_calls_per_source: int = 0
    # the call store (SQLite): refused calls are written to its blocked_calls table
    # (the table must exist: ivr.store creates it); None: they are only logged
    # callers: INVITEs only from these networks (CIDR), else 403 and a blocked call;
    # empty: from anywhere
    allowed_networks: tuple[str, ...] = ()
    # callers: "digest" asks every new call for a username and password of ``credentials``
    # ((username, password) pairs; only their HA1 hashes are written), in ``auth_realm``
    caller_auth: Literal["none", "digest"] = "none"
    auth_realm: str = "callcenter"
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    store_path: Path | None = None
    # agents: their phones REGISTER as sip:ID@agent_domain with digest (auth_realm) against
    # the store's agents_sip hashes, and INVITEs from workers to sip:ID@agent_domain go to
    # the registered contact. None: no registrar (REGISTER gets 405). Needs store_path.
    agent_domain: str | None = None
    agent_max_expires_s: int = 3600  # registrar: a phone's binding lasts at most this
    blocked_queue_size: int = 10000  # refused calls waiting for the store timer, at most
    log_level: LogLevel = "warning"
    children: int = 2  # UDP receiver processes (per listen socket)
    tcp_children: int = 2  # TCP workers
    shm_mb: int = 128  # shared memory: ~0.17 MB per call/s of traffic (measured), see docs
    pkg_mb: int = 8
    module_dir: Path = MODULE_DIR

    def __post_init__(self) -> None:
        object.__setattr__(self, "destinations", tuple(self.destinations))
        object.__setattr__(self, "transports", tuple(dict.fromkeys(self.transports)))
        object.__setattr__(self, "allowed_networks", tuple(self.allowed_networks))
        problems = list(self._problems())
        if problems:
            raise KamailioConfigError("invalid Kamailio settings:\n  " + "\n  ".join(problems))

    def _problems(self) -> list[str]:
        out: list[str] = []
        try:
            ipaddress.ip_address(self.listen_address)
        except ValueError:
            out.append(f"listen_address: {self.listen_address!r} is not an IP address")
        if not 1 <= self.port <= 65535:
            out.append(f"port: {self.port} is not a port number")
        if self.tls_port is not None:
            if not 1 <= self.tls_port <= 65535 or self.tls_port == self.port:
                out.append(f"tls_port: {self.tls_port} is not a port number other than port")
            for name in ("tls_cert", "tls_key"):
                path = getattr(self, name)
                if path is None:
                    out.append(f"{name}: needed with tls_port (a PEM file)")
                elif not Path(path).is_file():
                    out.append(f"{name}: {path} is not a file")
                elif _UNSAFE.search(str(Path(path).resolve())):
                    out.append(f"{name}: no quotes, backslashes or spaces, please")
        if not self.transports or not set(self.transports) <= {"udp", "tcp"}:
            out.append(f"transports: {self.transports!r}: give udp and/or tcp")
        uris = [d.uri for d in self.destinations]
        duids = [d.duid for d in self.destinations]
        if len(set(uris)) != len(uris) or len(set(duids)) != len(duids):
            out.append("destinations: the same worker is listed twice")
        for name in ("probe_interval_s", "probe_threshold", "no_reply_timeout_ms",
                     "answer_timeout_s", "retry_after_s", "call_expire_s", "pike_sampling_s",
                     "pike_max_requests", "pike_remove_latency_s", "max_forwards", "children",
                     "tcp_children", "shm_mb", "pkg_mb"):
            if getattr(self, name) < 1:
                out.append(f"{name}: must be at least 1")
        for net in self.allowed_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                out.append(f"allowed_networks: {net!r} is not a network (CIDR)")
        if self.caller_auth not in ("none", "digest"):
            out.append(f"caller_auth: {self.caller_auth!r}: give none or digest")
        if self.caller_auth == "digest" and not self.credentials:
            out.append("credentials: digest authentication needs at least one user")
        if not re.fullmatch(r"[A-Za-z0-9.\-_]+", self.auth_realm):
            out.append(f"auth_realm: {self.auth_realm!r}: letters, digits, . - _ only")
        for user, password in self.credentials:
            if not re.fullmatch(r"[A-Za-z0-9.\-_+]+", user) or not password:
                out.append(f"credentials: user {user!r}: letters, digits, . - _ + and a "
                           "password, please")
        for name in ("max_calls", "max_calls_per_source"):
            if getattr(self, name) < 0:
                out.append(f"{name}: must be 0 (no limit) or more")
        if self.agent_domain is not None:
            if self.store_path is None:
                out.append("agent_domain: agents' credentials are in the store: give "
                           "store_path too")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,252}", self.agent_domain):
                out.append(f"agent_domain: {self.agent_domain!r} is not a host name or "
                           "IPv4 address")
        if self.agent_max_expires_s < 60:
            out.append("agent_max_expires_s: must be at least 60")
        if self.blocked_queue_size < 1:
            out.append("blocked_queue_size: must be at least 1")
        if self.store_path is not None and _UNSAFE.search(str(self.store_path.resolve())):
            out.append("store_path: no quotes, backslashes or spaces, please")
        if self.max_forwards > 255:
            out.append("max_forwards: at most 255")
        for net in self.pike_exempt:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                out.append(f"pike_exempt: {net!r} is not a network (CIDR)")
        for name in ("run_dir", "module_dir"):
            if _UNSAFE.search(str(getattr(self, name))):
                out.append(f"{name}: no quotes, backslashes or spaces, please")
        ctl = self.run_dir.resolve() / CTL_SOCKET
        if len(os.fsencode(ctl)) > _SUN_PATH_MAX:
            out.append(f"run_dir: {ctl} is too long for a unix socket path; use a shorter one")
        return out

    @property
    def sip_uri(self) -> str:
        host = self.listen_address
        if ":" in host:
            host = f"[{host}]"
        return f"sip:{host}:{self.port}"


class _CfgTemplate(string.Template):
    delimiter = "@@"  # Kamailio owns $; a double at-sign appears nowhere in its syntax


def render(cfg: KamailioConfig) -> dict[str, str]:
    """File name -> content: ``kamailio.cfg`` (from ``kamailio.cfg.tmpl``) and
    ``dispatcher.list``. Paths inside are absolute, under ``cfg.run_dir``."""
    run_dir = cfg.run_dir.resolve()
    host = f"[{cfg.listen_address}]" if ":" in cfg.listen_address else cfg.listen_address
    listen = "\n".join(f"listen={t}:{host}:{cfg.port}" for t in cfg.transports)
    if cfg.tls_port is not None:
        listen += f"\nlisten=tls:{host}:{cfg.tls_port}\nenable_tls=yes"
    if "tcp" in cfg.transports or cfg.tls_port is not None:  # TLS runs over TCP
        tcp = f"tcp_children={cfg.tcp_children}\ntcp_connection_lifetime=3605"
    else:
        tcp = "disable_tcp=yes"
    pike_condition = "!ds_is_from_list()"
    if cfg.pike_exempt:
        nets = ",".join(cfg.pike_exempt)
        pike_condition = f'!is_in_subnet("$si", "{nets}") && {pike_condition}'
    defines = []
    if cfg.store_path is not None:
        defines.append("#!define WITH_STORE")
    if cfg.allowed_networks:
        defines.append("#!define WITH_ACL")
    if cfg.tls_port is not None:
        defines.append("#!define WITH_TLS")
    if cfg.caller_auth == "digest":
        defines.append("#!define WITH_AUTH")
    if cfg.agent_domain is not None:
        defines.append("#!define WITH_AGENTS")
    if cfg.caller_auth == "digest" or cfg.agent_domain is not None:
        defines.append("#!define WITH_DIGEST")
    if cfg.max_calls_per_source > 0:
        defines.append("#!define WITH_SOURCE_LIMIT")
    if cfg.max_calls > 0:
        defines.append("#!define WITH_GLOBAL_LIMIT")
    values: dict[str, object] = {
        "defines": "\n".join(defines),
        "store_path": cfg.store_path.resolve() if cfg.store_path is not None else "",
        "address_file": run_dir / ADDRESS_FILE,
        "auth_dir": run_dir / AUTH_DIR,
        "dialog_db": run_dir / DIALOG_DB,
        "dialog_db_period_s": 2,
        "auth_realm": cfg.auth_realm,
        "agent_domain": cfg.agent_domain or "",
        "agent_max_expires_s": cfg.agent_max_expires_s,
        # the nonce secret: stable for one config, not guessable from outside it
        "auth_secret": hashlib.sha256(
            repr(sorted(cfg.credentials)).encode() + str(run_dir).encode()).hexdigest()[:32],
        "tls_cert": cfg.tls_cert.resolve() if cfg.tls_cert is not None else "",
        "tls_key": cfg.tls_key.resolve() if cfg.tls_key is not None else "",
        "blocked_queue_size": cfg.blocked_queue_size,
        "max_calls": cfg.max_calls,
        "max_calls_per_source": cfg.max_calls_per_source,
        "debug": _DEBUG_LEVELS[cfg.log_level],
        # the core's parser errors (L_ERR) stay out unless everything is wanted
        "core_log_level": 3 if cfg.log_level == "debug" else -2,
        "children": cfg.children,
        "tcp_settings": tcp,
        "listen": listen,
        "module_dir": cfg.module_dir,
        "ctl_socket": run_dir / CTL_SOCKET,
        "no_reply_timeout_ms": cfg.no_reply_timeout_ms,
        "answer_timeout_ms": cfg.answer_timeout_s * 1000,
        "pike_sampling_s": cfg.pike_sampling_s,
        "pike_max_requests": cfg.pike_max_requests,
        "pike_remove_latency_s": cfg.pike_remove_latency_s,
        "pike_condition": pike_condition,
        "dispatcher_list": run_dir / LIST_FILE,
        "call_expire_s": cfg.call_expire_s,
        # a call not answered by then has lost its way (every worker answers at once)
        "setup_expire_s": max(120, 2 * cfg.answer_timeout_s),
        "ping_from": f"sip:front@{host}",
        "probe_interval_s": cfg.probe_interval_s,
        "probe_threshold": cfg.probe_threshold,
        "max_forwards": cfg.max_forwards,
        "set_id": cfg.set_id,
        "retry_after_s": cfg.retry_after_s,
    }
    text = _CfgTemplate(TEMPLATE.read_text()).substitute(values)
    files = {CFG_FILE: text, LIST_FILE: render_dispatcher_list(cfg.destinations)}
    if cfg.allowed_networks:
        files[ADDRESS_FILE] = render_address_list(cfg.allowed_networks)
    if cfg.caller_auth == "digest":
        files[f"{AUTH_DIR}/subscriber"] = render_subscribers(cfg.credentials, cfg.auth_realm)
    return files


def create_dialog_db(path: Path, schema_dir: Path = SQLITE_SCHEMA_DIR) -> None:
    """The dialog module's tables (Kamailio's own schema, with its version table), unless
    the file has them already: kept across restarts, it is how calls outlive one."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if {"version", "dialog", "dialog_vars"} <= have:
            return
        try:
            standard = (schema_dir / "standard-create.sql").read_text()
            dialog = (schema_dir / "dialog-create.sql").read_text()
        except OSError as exc:
            raise KamailioConfigError(
                f"{schema_dir}: Kamailio's SQLite schema is missing ({exc}); install "
                "Debian's kamailio-sqlite-modules") from exc
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file: Kamailio need not set it
        db.executescript("BEGIN;" + standard + dialog + "COMMIT;")
    path.chmod(0o600)  # callers' addresses


def render_subscribers(credentials: Sequence[tuple[str, str]], realm: str) -> str:
    """db_text's subscriber table: username and HA1 = MD5(user:realm:password), the hash
    digest authentication checks against (RFC 2617 3.2.2.2); no password is written."""
    lines = ["username(str) domain(str,null) ha1(str)"]
    for user, password in credentials:
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324
        lines.append(f"{user}::{ha1}")
    return "\n".join(lines) + "\n"


def render_address_list(networks: Sequence[str]) -> str:
    """permissions' address file: group 1, address, mask length, any port."""
    lines = ["# group address mask port -- generated by ivr/kamailio.py"]
    for net in networks:
        n = ipaddress.ip_network(net, strict=False)
        addr = f"[{n.network_address}]" if n.version == 6 else str(n.network_address)
        lines.append(f"1 {addr} {n.prefixlen} 0")
    return "\n".join(lines) + "\n"


def render_dispatcher_list(destinations: Sequence[Destination]) -> str:
    lines = ["# setid uri flags priority attrs -- generated by ivr/kamailio.py"]
    lines += [d.list_line() for d in destinations]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DestinationStatus:
    """One row of ``dispatcher.list`` as Kamailio sees it now."""

    set_id: int
    uri: str
    state: DestinationState
    probing: bool
    load: int  # calls Kamailio counts on it (algorithm 10)
    max_load: int
    duid: str
    flags: str  # Kamailio's two letters, e.g. "AP"


@dataclass
class KamailioProcess:
    """Kamailio as a child process of this one, with its files in ``config.run_dir``."""

    config: KamailioConfig
    binary: Path = KAMAILIO_BIN
    kamcmd: Path = KAMCMD_BIN
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    returncode: int | None = field(default=None, init=False)  # of the last one that exited

    # ---- files and paths

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir.resolve()

    @property
    def cfg_path(self) -> Path:
        return self.run_dir / CFG_FILE

    @property
    def ctl_socket(self) -> Path:
        return self.run_dir / CTL_SOCKET

    @property
    def log_path(self) -> Path:
        """Kamailio's stderr (its log, with ``log_stderror=yes``)."""
        return self.run_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        if self._proc is None:
            return False
        rc = self._proc.poll()
        if rc is None:
            return True
        self.returncode = rc
        return False

    def write_files(self) -> None:
        # Its log has callers' numbers in it: this user only (RUN_DIR_MODE, LOG_MODE).
        self.run_dir.mkdir(mode=RUN_DIR_MODE, parents=True, exist_ok=True)
        for name, text in render(self.config).items():
            path = self.run_dir / name
            path.parent.mkdir(mode=0o700, exist_ok=True)
            _write_atomic(path, text)
            if name.startswith(AUTH_DIR):
                path.chmod(0o600)  # HA1 hashes stand in for passwords
        create_dialog_db(self.run_dir / DIALOG_DB)

    def check_config(self) -> None:
        """Write the files and let ``kamailio -c`` judge them."""
        self.write_files()
        if not self.binary.exists():
            raise KamailioConfigError(f"{self.binary} not found: install Debian's kamailio")
        try:
            proc = subprocess.run(
                [str(self.binary), "-c", "-f", str(self.cfg_path), "-L",
                 str(self.config.module_dir), "-Y", str(self.run_dir)],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KamailioConfigError(f"kamailio -c {self.cfg_path} took over 30 s") from exc
        if proc.returncode != 0:
            # the first errors name the cause; the rest often follow from it
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()
                     if re.search(r"ERROR|CRITICAL|error", ln)]
            if len(lines) > 13:
                lines = [*lines[:12], "...", lines[-1]]
            message = "\n".join(lines) or (proc.stderr + proc.stdout)[-2000:]
            raise KamailioConfigError(f"kamailio refused {self.cfg_path}:\n{message}")

    # ---- life cycle

    def start(self, run_dir: Path | None = None, timeout_s: float = 10.0) -> None:
        """Write the files (into ``run_dir`` if given), check them, run Kamailio in the
        foreground as a child and return once it answers OPTIONS on its SIP address."""
        if self.running:
            raise KamailioStartError(f"Kamailio is already running (pid {self.pid})")
        if run_dir is not None:
            self.config = dataclasses.replace(self.config, run_dir=run_dir)
        self.check_config()
        with contextlib.suppress(FileNotFoundError):
            self.ctl_socket.unlink()  # left by a killed run; Kamailio refuses to reuse it
        cmd = [
            str(self.binary), "-DD", "-E", "-f", str(self.cfg_path),
            "-L", str(self.config.module_dir), "-Y", str(self.run_dir),
            "-P", str(self.run_dir / PID_FILE),
            "-m", str(self.config.shm_mb), "-M", str(self.config.pkg_mb),
        ]
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_MODE)
        os.fchmod(log_fd, LOG_MODE)  # one made by an older version was 0644
        self.returncode = None
        with open(log_fd, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.run_dir, start_new_session=True,
            )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        host, port = self.config.listen_address, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            sock.settimeout(0.2)
            while True:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise KamailioStartError(
                        f"Kamailio exited with {self._proc.returncode} while starting; "
                        f"its log:\n{self.log_tail()}")
                if "udp" not in self.config.transports:
                    if _tcp_open(host, port) and self.ctl_socket.exists():
                        return
                else:
                    sock.sendto(options_request(self.config, sock.getsockname()), (host, port))
                    try:
                        data = sock.recv(65535)
                    except TimeoutError:
                        data = b""
                    if data.startswith(b"SIP/2.0 200") and self.ctl_socket.exists():
                        return
                if time.monotonic() > deadline:
                    raise KamailioStartError(
                        f"Kamailio did not answer OPTIONS on {host}:{port} within {timeout_s} s; "
                        f"its log:\n{self.log_tail()}")
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM to the Kamailio this object started, and wait; SIGKILL to its process
        group (its own children only) if it does not exit in time. Returns its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait(timeout=5)
        # A main process that was killed (SIGKILL, a crash) could not stop its children:
        # they live on, holding the SIP port. The group still has them, so its id (the
        # main's pid) cannot have been reused.
        left = _group_members(proc.pid, self.cfg_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = _group_members(proc.pid, self.cfg_path)
        self._proc = None
        self.returncode = rc
        return rc

    def __enter__(self) -> KamailioProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # ---- control (kamcmd over the ctl unix socket)

    def rpc(self, method: str, *params: str | int, timeout_s: float = 5.0) -> str:
        """Run one Kamailio RPC command with ``kamcmd``; returns its text output."""
        if not self.kamcmd.exists():
            raise KamailioRpcError(f"{self.kamcmd} not found: it ships in Debian's kamailio")
        args = [p if isinstance(p, str) else str(p) for p in params]
        cmd = [str(self.kamcmd), "-s", f"unix:{self.ctl_socket}", method, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise KamailioRpcError(f"kamcmd {method} took over {timeout_s} s") from exc
        out = proc.stdout
        if proc.returncode != 0 or out.startswith("error:"):
            detail = (out + proc.stderr).strip()
            raise KamailioRpcError(f"kamcmd {method} {' '.join(args)}: {detail}")
        return out

    def agent_contacts(self, agent_id: str) -> list[str]:
        """The contacts an agent's phones registered (``ul.lookup``); [] when none is."""
        try:
            out = self.rpc("ul.lookup", "location", f"s:{agent_id}")
        except KamailioRpcError as exc:
            if "not found" in str(exc).lower():
                return []
            raise
        return [line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.strip().startswith("Address:")]

    def dispatcher_list(self) -> list[DestinationStatus]:
        """The destinations with their state and current call load."""
        try:
            text = self.rpc("dispatcher.list")
        except KamailioRpcError as exc:
            if "No Destination Sets" in str(exc):
                return []
            raise
        return parse_dispatcher_list(text)

    def set_state(self, uri: str, state: Literal["active", "inactive", "disabled"],
                  set_id: int | None = None) -> None:
        """Force a destination's state. ``inactive`` lasts until its next answered probe;
        ``disabled`` takes it out until set ``active`` again (probes stop meanwhile) — use
        that to drain a worker."""
        if state not in _STATE_CODES:
            raise ValueError(f"state must be one of {sorted(_STATE_CODES)}, not {state!r}")
        sid = self.config.set_id if set_id is None else set_id
        self.rpc("dispatcher.set_state", _STATE_CODES[state], sid, uri)

    def add_destination(self, dest: Destination) -> None:
        """Add a worker at run time; call loads and states of the others are kept."""
        self._update_destinations([*self.config.destinations, dest])
        self._rebuild("dispatcher.add", dest.set_id, dest.uri, 8, 0,
                      f"duid={dest.duid};maxload={dest.max_load}")

    def remove_destination(self, uri: str, set_id: int | None = None) -> None:
        """Remove a worker at run time; the others keep their loads and states."""
        sid = self.config.set_id if set_id is None else set_id
        self._update_destinations(
            [d for d in self.config.destinations if not (d.uri == uri and d.set_id == sid)])
        self._rebuild("dispatcher.remove", sid, uri)

    def reload_dispatcher(self, destinations: Sequence[Destination] | None = None) -> None:
        """Rewrite ``dispatcher.list`` (with ``destinations`` if given) and reload it.
        A reload rebuilds the list: call loads restart at 0 and states at active, so prefer
        add/remove_destination while calls are up."""
        if destinations is not None:
            self._update_destinations(destinations)
        self._rebuild("dispatcher.reload")

    def calls_of(self, uri: str) -> list[tuple[int, int]]:
        """The calls the front counts on worker ``uri`` (answered by it), as the dialog
        module's (h_entry, h_id)."""
        text = self.rpc("dlg.profile_list", "worker", uri)
        return [(int(e), int(i)) for e, i in re.findall(r"h_entry: (\d+)\s+h_id: (\d+)", text)]

    def end_calls_of(self, uri: str) -> int:
        """End every call worker ``uri`` answered: the front sends BYE to the caller (so the
        phone hangs up) and to the worker. Returns how many were ended. For a worker that
        died; its calls' loads are released as the BYEs go out."""
        ended = 0
        failures = []
        for h_entry, h_id in self.calls_of(uri):
            try:
                self.rpc("dlg.end_dlg", h_entry, h_id)
                ended += 1
            except KamailioRpcError as exc:  # ended meanwhile, or not answered yet
                failures.append(str(exc))
        if failures and not ended:
            raise KamailioRpcError(f"no call of {uri} could be ended: {failures[0]}")
        return ended

    def _rebuild(self, method: str, *params: str | int, timeout_s: float = 5.0) -> None:
        # dispatcher.add/remove/reload all rebuild the list and share one rate limit
        # (reload_delta, 1 s here): within the same second Kamailio answers "Ongoing reload".
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.rpc(method, *params)
                return
            except KamailioRpcError as exc:
                if "Ongoing reload" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def _update_destinations(self, destinations: Sequence[Destination]) -> None:
        self.config = dataclasses.replace(self.config, destinations=tuple(destinations))
        _write_atomic(self.run_dir / LIST_FILE, render_dispatcher_list(self.config.destinations))


def options_request(cfg: KamailioConfig, local: tuple[Any, ...]) -> bytes:
    """An OPTIONS to the front itself, sent from ``local`` (host, port) over UDP."""
    lhost, lport = local[0], local[1]
    if ":" in lhost:
        lhost = f"[{lhost}]"
    tag = uuid.uuid4().hex[:12]
    return (
        f"OPTIONS {cfg.sip_uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK{tag};rport\r\n"
        f"From: <sip:probe@{lhost}:{lport}>;tag={tag}\r\n"
        f"To: <{cfg.sip_uri}>\r\n"
        f"Call-ID: {tag}@{lhost}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def parse_dispatcher_list(text: str) -> list[DestinationStatus]:
    """Parse ``kamcmd dispatcher.list`` output (nested ``KEY: value`` / ``KEY: {`` blocks)."""
    out: list[DestinationStatus] = []
    for set_id, block in _dest_blocks(text):
        fields: dict[str, str] = {}
        for line in block:
            key, sep, value = line.partition(":")
            if sep and not value.endswith("{"):
                fields.setdefault(key.strip(), value.strip())
        flags = fields.get("FLAGS", "AX")
        out.append(DestinationStatus(
            set_id=set_id,
            uri=fields.get("URI", ""),
            state=_STATE_LETTERS.get(flags[:1], "active"),
            probing=flags[1:2] == "P",
            load=int(fields.get("DLGLOAD") or 0),
            max_load=int(fields.get("MAXLOAD") or 0),
            duid=fields.get("DUID", ""),
            flags=flags,
        ))
    return out


def _dest_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(set id, lines of one DEST block) in order, by brace depth."""
    blocks: list[tuple[int, list[str]]] = []
    set_id = 0
    depth = 0
    dest_depth: int | None = None
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if dest_depth is None and line.startswith("ID:"):
            set_id = int(line.split(":", 1)[1])
        if line.endswith("{"):
            depth += 1
            if line == "DEST: {" and dest_depth is None:
                dest_depth, current = depth, []
                continue
        elif line == "}":
            if dest_depth is not None and depth == dest_depth:
                blocks.append((set_id, current))
                dest_depth = None
            depth -= 1
            continue
        if dest_depth is not None:
            current.append(line)
    return blocks


def _group_members(pgid: int, cfg_path: Path) -> list[int]:
    """The Kamailio processes (run with ``-f cfg_path``) in process group ``pgid``."""
    found: list[int] = []
    cfg = os.fsencode(cfg_path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and cfg in argv:
            found.append(int(entry.name))
    return found


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def kamailio_available() -> bool:
    """True when Debian's kamailio and kamcmd are installed where this module looks."""
    return KAMAILIO_BIN.exists() and KAMCMD_BIN.exists()
