"""The agent's SIP user agent (the softphone's phone): one registration through the stack's
SIP front with digest authentication, one call at a time, audio to and from Python.

It owns its PJSIP endpoint on its own pump thread (``threadCnt=0``, ``mainThreadOnly``: the
pjsua2 ``pygui`` pattern): every method queues a command for that thread and returns; what
happens comes back as frozen events through ``on_event`` (called on the pump thread: the
caller hands them to its own loop, e.g. ``loop.call_soon_threadsafe``). Callbacks only
build events; nothing here decides what the agent does.

Audio: PJSUA's sound device is the null device (the pjsua2 wheel has none); the call is
connected both ways to an :class:`_AudioPort`, which the conference bridge's clock asks for
one frame (``frame_ms``) of the agent's voice at a time and gives each frame of the
caller's. Those two calls go to ``source(n_bytes) -> bytes`` and ``sink(bytes)``: they must
not block (ring buffers, ``softphone/audio.py``). Mute sends silence; hold is a re-INVITE
(sendonly), after which the caller hears the server's music on hold.

An INVITE that does not come from the front (``proxy``) is refused 403: the phone takes
calls only from the server it is signed in to.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from .errors import PhoneStateError, PjsipError
from .sipcheck import Source, source_allowed

log = logging.getLogger("media.agent_ua")

SILENCE = b""


@dataclass(frozen=True)
class AgentUaConfig:
    agent_id: str
    password: str
    proxy: str  # "host:port" of the stack's SIP front (registrar and outbound proxy)
    domain: str = "127.0.0.1"  # the agents' SIP domain (front.agent_domain)
    bind_address: str = "127.0.0.1"
    sip_port: int = 0  # 0: any free port
    rtp_port: int = 0
    rtp_port_range: int = 20
    clock_rate_hz: int = 8000
    frame_ms: int = 20
    register_expires_s: int = 600
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")
    user_agent: str = "callcenter-softphone"
    pjsip_log_level: int = 1


# ---- events (frozen, named for what happened) ---------------------------------------


@dataclass(frozen=True)
class Registered:
    ok: bool
    status: int
    reason: str


@dataclass(frozen=True)
class IncomingCall:
    from_server: bool
    source: str  # "ip:port" the INVITE came from
    remote_uri: str
    call_info: str  # the Call-Info header: the server's call id for the screen pop
    queue: str  # X-Queue


@dataclass(frozen=True)
class CallAnswered:
    codec: str


@dataclass(frozen=True)
class CallHeld:
    held: bool


@dataclass(frozen=True)
class CallEnded:
    status: int
    reason: str
    by_agent: bool


AgentUaEvent = Registered | IncomingCall | CallAnswered | CallHeld | CallEnded


def header_value(whole_msg: str, name: str) -> str:
    """The first value of header ``name`` in a SIP message (case-insensitive)."""
    head = whole_msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    found = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", head, re.IGNORECASE | re.MULTILINE)
    return found.group(1).strip() if found else ""


class _AudioPort(pj.AudioMediaPort):  # type: ignore[misc]
    """The call's audio to and from Python: called on the conference bridge's clock."""

    def __init__(self, source: Callable[[int], bytes], sink: Callable[[bytes], None],
                 frame_bytes: int) -> None:
        super().__init__()
        self._source, self._sink = source, sink
        self._frame_bytes = frame_bytes
        self._silence = bytes(frame_bytes)
        self.muted = False

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        data = self._silence if self.muted else self._source(self._frame_bytes)
        if len(data) != self._frame_bytes:
            data = (data + self._silence)[: self._frame_bytes]
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = self._frame_bytes

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self._sink(bytes(frame.buf))


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, ua: AgentUa) -> None:
        super().__init__()
        self._ua = ua

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        self._ua._emit(Registered(prm.code // 100 == 2 and prm.expiration > 0, prm.code,
                                  prm.reason))

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self._ua._on_incoming(prm.callId, prm.rdata)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, ua: AgentUa, account: _Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self._ua = ua

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        self._ua._on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        self._ua._on_media_state(self)


class AgentUa:
    def __init__(self, config: AgentUaConfig, on_event: Callable[[AgentUaEvent], None],
                 source: Callable[[int], bytes], sink: Callable[[bytes], None]) -> None:
        self.config = config
        self._on_event = on_event
        self._frame_bytes = config.clock_rate_hz * config.frame_ms // 1000 * 2
        self._source, self._sink = source, sink
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping = False
        self._ep: Any = None
        self._account: _Account | None = None
        self._call: _Call | None = None
        self._refused: list[_Call] = []
        self._port: _AudioPort | None = None
        self._call_audio: Any = None
        self._local_hangup = False
        self._held = False
        self._muted = False
        self._proxy = Source.parse(config.proxy)
        self.local_port = 0

    # ---- the owner's side (any thread) ----------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Start PJSIP and register; raises PjsipError if PJSIP cannot start."""
        self._thread = threading.Thread(target=self._pump, name="agent-ua", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise PjsipError(f"the SIP user agent did not start within {timeout_s:g} s")
        if self._start_error is not None:
            raise PjsipError(f"the SIP user agent could not start: {self._start_error}")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def answer(self) -> None:
        self._submit(self._answer)

    def reject(self, sip_status: int) -> None:
        self._submit(lambda: self._hangup(sip_status))

    def hang_up(self) -> None:
        self._submit(lambda: self._hangup(None))

    def set_mute(self, muted: bool) -> None:
        self._submit(lambda: self._set_mute(muted))

    def set_hold(self, held: bool) -> None:
        self._submit(lambda: self._set_hold(held))

    def send_dtmf(self, digits: str) -> None:
        self._submit(lambda: self._dtmf(digits))

    def register_again(self) -> None:
        """Send a REGISTER now (a restarted front has forgotten the contact)."""
        self._submit(self._register_again)

    def _submit(self, fn: Callable[[], None]) -> None:
        if self._thread is None or self._stopping:
            raise PhoneStateError("the SIP user agent is not running")
        self._commands.append(fn)

    # ---- the pump thread ------------------------------------------------------------

    def _emit(self, event: AgentUaEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # never into PJSIP's C frames
            log.exception("agent UA: the event handler failed on %s", event)

    def _pump(self) -> None:
        try:
            self._init()
        except Exception as exc:
            self._start_error = exc
            self._started.set()
            self._destroy()
            return
        self._started.set()
        while not self._stopping:
            while self._commands:
                fn = self._commands.popleft()
                try:
                    fn()
                except pj.Error as exc:
                    log.warning("agent UA: PJSIP refused: %s", exc.info())
            self._ep.libHandleEvents(20)
        self._destroy()

    def _init(self) -> None:
        cfg = self.config
        ep = pj.Endpoint()
        self._ep = ep
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 2
        ep_cfg.uaConfig.userAgent = cfg.user_agent
        ep_cfg.logConfig.level = cfg.pjsip_log_level
        ep_cfg.logConfig.consoleLevel = cfg.pjsip_log_level
        med = ep_cfg.medConfig
        med.clockRate = med.sndClockRate = cfg.clock_rate_hz
        med.channelCount = 1
        med.ptime = cfg.frame_ms
        med.ecTailLen = 0  # echo: headset-only (docs/softphone.md)
        med.noVad = True
        ep.libInit(ep_cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = cfg.sip_port
        tcfg.boundAddress = cfg.bind_address
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.local_port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[-1])
        ep.audDevManager().setNullDev()
        ep.libStart()
        available = {ci.codecId.upper(): ci.codecId for ci in ep.codecEnum2()}
        for cid in available.values():
            ep.codecSetPriority(cid, 0)
        for rank, name in enumerate(cfg.codecs):
            for key, cid in available.items():
                if key.startswith(name.upper()):
                    ep.codecSetPriority(cid, 250 - rank)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{cfg.agent_id}@{cfg.domain}"
        acfg.regConfig.registrarUri = f"sip:{cfg.domain}"
        acfg.regConfig.timeoutSec = cfg.register_expires_s
        acfg.sipConfig.proxies.append(f"sip:{cfg.proxy};lr;transport=udp")
        acfg.sipConfig.transportId = tid
        cred = pj.AuthCredInfo("digest", "*", cfg.agent_id, 0, cfg.password)
        acfg.sipConfig.authCreds.append(cred)
        mt = acfg.mediaConfig.transportConfig
        mt.port = cfg.rtp_port
        mt.portRange = cfg.rtp_port_range
        mt.boundAddress = cfg.bind_address
        self._account = _Account(self)
        self._account.create(acfg, True)

    def _destroy(self) -> None:
        if self._ep is None:
            return
        try:
            if self._call is not None:
                self._hangup(None)
            if self._port is not None:
                pj.AudioMediaPort.__swig_destroy__(self._port)
                self._port = None
            if self._account is not None:
                self._account.shutdown()
            self._ep.libDestroy()
        except pj.Error as exc:
            log.warning("agent UA: at stop: %s", exc.info())
        self._ep = None

    def _on_incoming(self, call_id: int, rdata: Any) -> None:
        assert self._account is not None
        call = _Call(self, self._account, call_id)
        src = str(rdata.srcAddress)
        from_server = source_allowed(src, [self._proxy])
        if self._call is not None or not from_server:
            op = pj.CallOpParam()
            op.statusCode = 486 if from_server else 403
            op.reason = "Busy Here" if from_server else "Forbidden (not the agent's server)"
            self._refused.append(call)  # kept until it ends: ~Call would send 603
            call.answer(op)
            if not from_server:
                log.warning("agent UA: refused an INVITE from %s (not the server %s)", src,
                            self.config.proxy)
            return
        self._call = call
        self._local_hangup = self._held = self._muted = False
        msg = str(rdata.wholeMsg)
        ring = pj.CallOpParam()
        ring.statusCode = 180
        call.answer(ring)
        self._emit(IncomingCall(True, src, call.getInfo().remoteUri,
                                header_value(msg, "Call-Info"), header_value(msg, "X-Queue")))

    def _register_again(self) -> None:
        if self._account is not None:
            self._account.setRegistration(True)

    def _answer(self) -> None:
        if self._call is not None:
            op = pj.CallOpParam()
            op.statusCode = 200
            self._call.answer(op)

    def _hangup(self, status: int | None) -> None:
        if self._call is None:
            return
        op = pj.CallOpParam()
        if status is not None:
            op.statusCode = status
        self._local_hangup = True
        try:
            self._call.hangup(op)
        except pj.Error as exc:
            log.info("agent UA: hang-up of a call already ending: %s", exc.info())

    def _set_mute(self, muted: bool) -> None:
        self._muted = muted
        if self._port is not None:
            self._port.muted = muted

    def _set_hold(self, held: bool) -> None:
        if self._call is None:
            return
        op = pj.CallOpParam(True)
        if held:
            self._call.setHold(op)
        else:
            op.opt.flag = pj.PJSUA_CALL_UNHOLD
            self._call.reinvite(op)
        self._held = held
        self._emit(CallHeld(held))

    def _dtmf(self, digits: str) -> None:
        if self._call is None:
            return
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        self._call.sendDtmf(prm)

    def _on_call_state(self, call: _Call) -> None:
        info = call.getInfo()
        if call in self._refused and info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._refused.remove(call)
        if call is not self._call:
            return
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._disconnect_audio()
            self._call = None
            self._emit(CallEnded(info.lastStatusCode, info.lastReason, self._local_hangup))

    def _on_media_state(self, call: _Call) -> None:
        if call is not self._call:
            return
        info = call.getInfo()
        for idx, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                first = self._call_audio is None
                self._connect_audio(call.getAudioMedia(idx))
                if first:
                    self._emit(CallAnswered(call.getStreamInfo(idx).codecName))

    def _connect_audio(self, audio: Any) -> None:
        if self._port is None:
            port = _AudioPort(self._source, self._sink, self._frame_bytes)
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, self.config.clock_rate_hz, 1,
                     self.config.frame_ms * 1000, 16)
            port.createPort(f"agent-{self.config.agent_id}", fmt)
            self._port = port
        self._port.muted = self._muted
        if self._call_audio is not None and self._call_audio.getPortId() == audio.getPortId():
            return
        self._call_audio = audio
        audio.startTransmit(self._port)
        self._port.startTransmit(audio)

    def _disconnect_audio(self) -> None:
        if self._port is not None and self._call_audio is not None:
            try:
                self._call_audio.stopTransmit(self._port)
                self._port.stopTransmit(self._call_audio)
            except pj.Error:
                pass
        self._call_audio = None
