"""Settings: typed sections validated at the door, from a YAML file and the environment.

Precedence: built-in defaults < the YAML file (``--config`` or ``IVR_CONFIG``) < environment
variables named ``IVR_<SECTION>_<FIELD>`` (``IVR_SIP_PORT=5070``, ``IVR_PATHS_VAR_DIR=/srv``).
Every field is documented in ``docs/configuration.md``; ``ivr config show`` prints the result.
An invalid value is refused with the file, line and field (or the variable) it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from media.sipcheck import Source

from .yamlsrc import SourceMap, YamlError, load_yaml

ENV_PREFIX = "IVR_"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ConfigError(Exception):
    """Settings that cannot be used; the message says which and where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SipSettings(_Section):
    bind_address: str = "127.0.0.1"
    port: int = Field(default=5060, ge=1, le=65535)
    transports: list[Literal["udp", "tcp"]] = ["udp", "tcp"]
    public_address: str | None = None  # written into Contact/SDP when behind NAT
    # RFC 4028 session interval on every call (refreshed by the caller or by us); 0: only
    # when the caller asks for a session timer
    session_expires_s: int = Field(default=1800, ge=0, le=86400)

    @field_validator("session_expires_s")
    @classmethod
    def _rfc4028_minimum(cls, v: int) -> int:
        if 0 < v < 90:
            raise ValueError(f"{v} is below the 90 s minimum of RFC 4028 (0 turns it off)")
        return v

    # SIP over TLS for callers at the front (Kamailio) on this port, with a PEM certificate
    # (chain) and its private key; None: no TLS. The workers stay on UDP behind it.
    tls_port: int | None = Field(default=None, ge=1, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_files(self) -> SipSettings:
        if self.tls_port is not None:
            missing = [n for n in ("tls_cert", "tls_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"sip.tls_port needs {' and '.join('sip.' + n for n in missing)}"
                                 " (PEM files; see docs/configuration.md)")
            if self.tls_port == self.port:
                raise ValueError("sip.tls_port must differ from sip.port")
        return self

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an IP address") from exc
        return v


class RtpSettings(_Section):
    port_start: int = Field(default=40000, ge=1024, le=65000)
    port_range: int = Field(default=1000, ge=8, le=30000)


class MediaSettings(_Section):
    clock_rate_hz: Literal[8000, 16000] = 8000
    codecs: list[Literal["PCMU/8000", "PCMA/8000", "G722/16000"]] = [
        "PCMU/8000", "PCMA/8000", "G722/16000",
    ]
    inband_dtmf: Literal["auto", "always", "never"] = "auto"
    pump_timeout_ms: int = Field(default=100, ge=1, le=1000)
    # true: PJMEDIA reads RTP on a thread of its own; false: the pump thread reads it along
    # with SIP (one thread fewer per worker; see docs/architecture.md, Capacity)
    rtp_thread: bool = True
    # SCHED_RR priority for the media clock thread (sends RTP every 20 ms) so that it is not
    # late when the machine is busy; 0 leaves it at normal priority. Needs CAP_SYS_NICE or
    # LimitRTPRIO; without, one warning and normal priority.
    realtime_priority: int = Field(default=10, ge=0, le=99)
    pjsip_log_level: int = Field(default=1, ge=0, le=6)
    # sdp: RTP only from the address in the caller's SDP; any: PJMEDIA's NAT latching
    rtp_source: Literal["sdp", "any"] = "sdp"
    # no RTP from the caller this long (not on hold) ends the call as rtp_timeout; 0: off
    rtp_timeout_s: float = Field(default=60.0, ge=0, le=86400)
    # SRTP (SDES keys, RFC 4568) for callers that offer it; mandatory refuses plain RTP
    srtp: Literal["optional", "mandatory", "off"] = "optional"


class WorkerSettings(_Section):
    name: str = "worker-1"
    max_calls: int = Field(default=4, ge=1, le=4)  # the pjsua2-python wheel's PJSUA limit
    drain_timeout_s: float = Field(default=30.0, ge=0, le=3600)
    media_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Who may send this worker INVITEs: "host" or "host:port" ("[v6]:port"); empty: anyone
    # (a standalone worker). In the pool the controller sets it to the front's address.
    trusted_sources: list[str] = []
    # Where agent legs go first ("host:port", a loose route): the front (Kamailio), which
    # knows where sip:ID@agent_domain is registered. None: the front's address in a pool
    # with the front, else straight to the agent URI's host.
    outbound_proxy: str | None = None

    @field_validator("outbound_proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v is not None:
            Source.parse(v)  # ValueError names the bad address
        return v

    @field_validator("trusted_sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        for text in v:
            Source.parse(text)  # ValueError names the bad entry
        return v


class PoolSettings(_Section):
    """The pool of call workers behind the SIP front (``ivr run``)."""

    workers: int = Field(default=4, ge=1, le=1000)  # started at once
    max_workers: int = Field(default=64, ge=1, le=1000)
    min_idle_workers: int = Field(default=1, ge=0, le=1000)  # kept with no call, ready
    worker_address: str = "127.0.0.1"
    worker_port_base: int = Field(default=5100, ge=1024, le=65000)  # slot i: base + i
    rtp_ports_per_worker: int = Field(default=20, ge=8, le=1000)
    restart_delay_s: float = Field(default=1.0, ge=0, le=60)
    # A worker idle this long is retired, down to `workers` and `min_idle_workers` (0: never).
    idle_retire_s: float = Field(default=60.0, ge=0, le=86400)
    # Call events from the workers are written in one transaction per batch, at most this
    # late (0: one transaction per event, as a standalone worker does).
    store_batch_ms: int = Field(default=50, ge=0, le=1000)

    @field_validator("worker_address")
    @classmethod
    def _ip(cls, v: str) -> str:
        return SipSettings._ip(v)


class FrontSettings(_Section):
    """Kamailio, the one SIP address callers see (it listens on sip.bind_address:sip.port)."""

    enabled: bool = True
    probe_interval_s: int = Field(default=2, ge=1, le=60)
    children: int = Field(default=2, ge=1, le=32)
    # No reply at all (not even 100 Trying) from a worker within this: try the next worker.
    # Short values make a busy machine answer one caller from two workers (measured at 2 s).
    no_reply_timeout_ms: int = Field(default=5000, ge=500, le=30000)
    # Admission: calls up or being set up at once through the front, in all (None: the
    # pool's capacity, pool.max_workers x worker.max_calls) and from one source address
    # (None: half of max_calls, so one flooding address never takes every slot; 0: no limit,
    # for a carrier trunk that brings every call from one address). Past either: 503 with
    # Retry-After, and a blocked-call record.
    max_calls: int | None = Field(default=None, ge=1, le=100000)
    max_calls_per_source: int | None = Field(default=None, ge=0, le=100000)
    retry_after_s: int = Field(default=5, ge=1, le=3600)  # on the front's own 503s
    # Calls only from these networks (CIDR: a carrier's trunk addresses, the office LAN);
    # others get 403 and a blocked-call record. Empty: from anywhere (the default, with the
    # front on loopback; the controller logs that it is open).
    allowed_networks: list[str] = []
    # Callers authenticate with SIP digest (407 challenge) against the users in
    # credentials_file ("username:password" lines), or not at all ("none", the default).
    caller_auth: Literal["none", "digest"] = "none"
    auth_realm: str = "callcenter"
    credentials_file: Path | None = None
    # Agents' phones register as sip:ID@agent_domain (digest in auth_realm, against the
    # store's agents_sip hashes: ivr agent add); workers call agents at that URI. None:
    # sip.bind_address.
    agent_domain: str | None = None

    @field_validator("agent_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,252}", v):
            raise ValueError(f"{v!r} is not a SIP domain (a host name or IPv4 address)")
        return v

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network (CIDR, e.g. 192.0.2.0/24)") from exc
        return v


    @model_validator(mode="after")
    def _auth_needs_users(self) -> FrontSettings:
        if self.caller_auth == "digest" and self.credentials_file is None:
            raise ValueError("front.caller_auth digest needs front.credentials_file "
                             "(username:password lines)")
        return self


class HttpSettings(_Section):
    """The agent API (HTTP + WebSocket, ``ivr/api/``), served by the controller."""

    enabled: bool = True
    port: int = Field(default=8080, ge=1, le=65535)  # IVR_HTTP_PORT
    bind_address: str | None = None  # None: sip.bind_address
    # how long a sign-in token lasts (kept in memory only: a restart signs agents out)
    token_ttl_s: float = Field(default=43200.0, gt=0, le=30 * 86400)

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        return None if v is None else SipSettings._ip(v)


class FlowSettings(_Section):
    """Deployment values for flows: they override the flow file's own ``vars``
    (``IVR_FLOWS_VARS='{crm_url: "http://crm.internal:8080"}'``)."""

    vars: dict[str, str] = {}


class SpeechSettings(_Section):
    """Speech recognition in menus (ivr/speech/, docs/architecture.md "Where recognition
    runs"): the backend the speech service runs, its model directories per language
    (``IVR_SPEECH_MODELS='{ko-KR: /srv/vosk-model-small-ko-0.22}'``), and how many processes
    it forks (each recognises one utterance at a time)."""

    backend: Literal["pocketsphinx", "vosk"] = "pocketsphinx"
    models: dict[str, Path] = {}
    processes: int = Field(default=2, ge=1, le=64)


# The checkout (or install prefix) holding the ivr package: relative default paths start here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PathSettings(_Section):
    """Relative paths are resolved when the settings are loaded (``load_settings``): from a
    settings file, against that file's directory; from an environment variable, against the
    current directory; the defaults, against the project (``PROJECT_ROOT``). So every command
    finds the same store and prompts from any directory."""

    var_dir: Path = Path("var")
    flow: Path = Path("ivr/flows/default.yaml")
    prompts_dir: Path = Path("prompts")
    acd: Path = Path("ivr/acd.yaml")


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(_Section):
    sip: SipSettings = SipSettings()
    rtp: RtpSettings = RtpSettings()
    media: MediaSettings = MediaSettings()
    worker: WorkerSettings = WorkerSettings()
    pool: PoolSettings = PoolSettings()
    front: FrontSettings = FrontSettings()
    http: HttpSettings = HttpSettings()
    flows: FlowSettings = FlowSettings()
    speech: SpeechSettings = SpeechSettings()
    paths: PathSettings = PathSettings()
    log: LogSettings = LogSettings()

    @property
    def db_path(self) -> Path:
        return self.paths.var_dir / "ivr.sqlite3"

    @property
    def run_dir(self) -> Path:
        return self.paths.var_dir / "run"

    @property
    def agent_domain(self) -> str:
        """The domain of agents' SIP addresses (sip:ID@domain)."""
        return self.front.agent_domain or self.sip.bind_address

    @property
    def http_bind_address(self) -> str:
        """The address the agent API listens on (http.bind_address, else sip.bind_address)."""
        return self.http.bind_address or self.sip.bind_address

    @property
    def http_url(self) -> str:
        """The HTTP API's base URL, as agents' clients reach it."""
        host = self.http.bind_address or self.sip.bind_address
        if _is_ip(host) and ipaddress.ip_address(host).is_unspecified:
            host = self.sip.public_address or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http.port}"

    @property
    def journal_dir(self) -> Path:
        """Pooled workers' call records the controller has yet to apply (``ivr/journal.py``);
        kept across restarts, unlike ``run_dir``'s sockets and pid files."""
        return self.paths.var_dir / "journal"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _env_overrides(
    env: Mapping[str, str],
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    """``IVR_SIP_PORT`` -> {"sip": {"port": "5060"}}; values are parsed as YAML scalars/lists."""
    out: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    sections = Settings.model_fields
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var == "IVR_CONFIG":
            continue
        rest = var[len(ENV_PREFIX):].lower()
        for section, finfo in sections.items():
            if not rest.startswith(section + "_"):
                continue
            field_name = rest[len(section) + 1:]
            model = finfo.annotation
            if isinstance(model, type) and field_name in model.model_fields:
                try:
                    value = yaml.safe_load(raw) if raw.strip() else raw
                except yaml.YAMLError:
                    value = raw
                if isinstance(value, (int, float, bool)) and field_name in {
                    "bind_address", "public_address", "name"
                }:
                    value = raw
                out.setdefault(section, {})[field_name] = value
                origin[(section, field_name)] = var
            elif isinstance(model, type):
                known = ", ".join(model.model_fields)
                raise ConfigError(
                    f"environment variable {var}: section {section!r} has no setting "
                    f"{field_name!r} (it has: {known})")
            break
    return out, origin


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    if path is None and env.get("IVR_CONFIG"):
        path = Path(env["IVR_CONFIG"])
    data: dict[str, Any] = {}
    smap = SourceMap("<defaults>")
    if path is not None:
        try:
            loaded, smap = load_yaml(path)
        except YamlError as exc:
            raise ConfigError(str(exc)) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}:1: settings are a mapping of sections (sip, rtp, ...)")
        data = loaded
    overrides, origin = _env_overrides(env)
    for section, values in overrides.items():
        base = data.get(section)
        if base is None:
            base = {}
        if isinstance(base, dict):  # else keep the file's bad value, so it is refused
            data[section] = {**base, **values}
    from_file = set(loaded_paths) if isinstance(
        loaded_paths := (data.get("paths") if path is not None else None), dict) else set()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc)
            key = (str(loc[0]), str(loc[1])) if len(loc) >= 2 else None
            if key and key in origin:
                where = f"environment variable {origin[key]}"
            else:
                line = smap.line_of(loc)
                where = f"{smap.path}:{line}" if line else smap.path
            problems.append(f"{where}: {dotted}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from exc
    return _resolve_paths(settings, path, from_file, origin)


def _resolve_paths(settings: Settings, file: Path | None, from_file: set[str],
                   origin: Mapping[tuple[str, str], str]) -> Settings:
    """Make ``paths.*`` absolute, by where each value came from (see ``PathSettings``)."""
    resolved: dict[str, Path] = {}
    for name in PathSettings.model_fields:
        value: Path = getattr(settings.paths, name)
        value = value.expanduser()
        if not value.is_absolute():
            if ("paths", name) in origin:
                base = Path.cwd()
            elif name in from_file and file is not None:
                base = file.resolve().parent
            else:
                base = PROJECT_ROOT
            value = base / value
        resolved[name] = value
    return settings.model_copy(
        update={"paths": settings.paths.model_copy(update=resolved)})
