"""The one PJSIP endpoint of a process, driven from a single pump thread.

Thread model (docs/architecture.md):

* PJSIP runs no SIP threads of its own (``threadCnt = 0``); ``mainThreadOnly`` is off, so an
  RFC 4733 digit is posted from PJMEDIA's media thread as it is decoded.
* One *pump thread*, started by :meth:`Phone.start`, creates the ``pjsua2.Endpoint``, owns
  every pjsua2 object and loops on ``libHandleEvents(pump_timeout_ms)``; pjsua2 releases the
  GIL while it waits in ``select()``.
* Every pjsua2 call wanted by the asyncio side is a command queued for that thread
  (:meth:`Phone.submit`). The pump is woken at once by a CRLF keep-alive datagram (RFC 5626
  section 4.4.1; PJSIP ignores it) sent to its own UDP transport, so a command runs within a
  fraction of a millisecond while an idle pump sleeps in ``select()``.
* SIP callbacks therefore run on the pump thread. They only turn pjsua2's parameters into our
  own events and hand them to the loop with ``call_soon_threadsafe``.
* PJMEDIA's clock thread calls the player EOF callback and the in-band tap; those only append
  to a deque and post an event.
* Strong references: every pjsua2 ``Call`` is held in ``Phone._calls`` until its DISCONNECTED
  state has been handled; players and taps are destroyed on the pump thread after that.
* Recorders (``AudioMediaRecorder``) are destroyed on the pump thread too, but in PJSIP 2.15
  the conference bridge removes a port on its next clock tick, and only then does the WAV
  writer close the file and write the header's lengths. So a recorder is released as early
  as possible (before a local hang-up, in the DISCONNECTED callback of a remote one: while
  the bridge clock still runs) and the loop waits for the header before reading the WAV.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pjsua2 as pj

from . import bridge as _links
from .errors import LegBusyError, LegGoneError, PhoneStateError, PjsipError
from .events import (
    DtmfMethod,
    DtmfReceived,
    HangupSide,
    LegAnswered,
    LegFailed,
    LegHeld,
    LegHungUp,
    LegReferred,
    LegResumed,
    LegRinging,
    MediaReady,
    MediaTimedOut,
    SessionExpired,
    TransferResult,
)
from .framebytes import vector_bytes
from .inband import TAP_CLOCK_RATE_HZ, TAP_FRAME_MS, FrameSink, InbandTap, LevelMeter
from .leg import CallLeg, SipCallLeg
from .moh import MusicOnHold
from .outbound import check_headers, check_target
from .pjlog import LogLimiter, summarize
from .players import PLAYER_MIN_HOLD_S as _PLAYER_MIN_HOLD_S
from .players import Player as _Player
from .players import PlayersBusy as _PlayersBusy
from .players import RetiredPlayers as _RetiredPlayers
from .rtp_guard import RxWatch, connect_socket, parse_address
from .rtsched import ClockPriority
from .sipcheck import RefusalLog, Source, invite_problem, source_allowed

log = logging.getLogger("media.phone")

T = TypeVar("T")

_CRLF_KEEPALIVE = b"\r\n\r\n"
_INBAND_POLL_S = 0.06
# While a speech menu listens: barge-in stops the prompt within 200 ms of speech onset, of
# which the VAD's minimum voiced duration takes 150 ms; the poll may add at most this.
_LISTEN_POLL_S = 0.02
_RECORDER_CLOSE_POLL_S = 0.01
# The bridge removes a released recorder on its next 20 ms tick; if the WAV is still open
# after _RECORDER_KICK_S, its clock has stopped (see _check_recordings_closed).
_RECORDER_KICK_S = 0.1
_RECORDER_KICKS = 3
_RECORDER_CHECK_MS = 20
_CLOCK_LOOK_MS = 10  # pump turn while a just-started media clock thread is looked for
_IDLE_PUMP_TIMEOUT_MS = 1000  # pump turn while no call is up
_PJ_ETOOMANY = 70010
_PJSIP_ESESSIONTERMINATED = 171140
_SIP_REQUEST_TIMEOUT = 408
_PLAYER_SLOT_TRIES = 20  # 50 ms apart
_WAV_HEADER_BYTES = 44  # PJMEDIA's WAV writer: RIFF, fmt (16 bytes) and data chunk headers
_ALL_CODECS_OFF = 0
_SRTP_USE = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
             "mandatory": pj.PJMEDIA_SRTP_MANDATORY}
_MIN_SE_S = 90  # RFC 4028 section 4; PJSIP refuses less
_SESSION_EXPIRED_REASON = "No session refresh received."  # PJSIP's sip_timer.c
_RX_CHECK_MAX_S = 5.0  # the received-packet counters are read at least this often
_RX_CHECK_MIN_S = 0.5
_PJ_VERBOSE_LEVEL = 4  # from this pjsip_log_level on, PJSIP's log is passed on whole
_PJ_LEVEL_TO_LOGGING = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING}


@dataclass(frozen=True)
class PhoneConfig:
    """Settings of the process's SIP user agent. Units are in the names."""

    bind_address: str = "127.0.0.1"
    sip_port: int = 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    public_address: str | None = None
    rtp_port: int = 40000
    rtp_port_range: int = 1000
    max_calls: int = 4
    clock_rate_hz: int = 8000
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000", "G722/16000")
    inband_dtmf: str = "auto"  # auto: only on legs without telephone-event | always | never
    pump_timeout_ms: int = 100
    rtp_thread: bool = True  # False: RTP sockets on the SIP ioqueue, read by the pump thread
    realtime_priority: int = 0  # SCHED_RR priority of the media clock thread; 0: normal
    user_agent: str = "callcenter-ivr"
    pjsip_log_level: int = 1
    local_user: str = "ivr"
    # Who may send INVITEs ("host" or "host:port"); empty: anyone. Others get 403.
    trusted_sources: tuple[str, ...] = ()
    # "sdp": RTP only from the address the caller's SDP gave (media/rtp_guard.py);
    # "any": PJMEDIA's own NAT latching (anyone can take a call's media over).
    rtp_source: str = "sdp"
    rtp_timeout_s: float = 60.0  # no RTP from the caller this long: MediaTimedOut; 0: off
    # RFC 4028 session timer on every call (we refresh when the caller does not); 0: only
    # when the caller asks for one (PJSUA's default, PJSIP's 1800 s).
    session_expires_s: int = 1800
    # SRTP with SDES keys (RFC 4568) on callers that offer it: "optional" (plain RTP for the
    # others) | "mandatory" (refuse plain RTP) | "off"
    srtp: str = "optional"
    # Where outbound calls (Phone.place_call) go first, as a loose route ("host:port", e.g.
    # the SIP front); None: straight to the target URI's host.
    outbound_proxy: str | None = None


@dataclass
class _ClosingRecording:
    """A released recorder whose WAV the bridge has not closed yet (pump thread)."""

    path: Path
    due_s: float  # time.monotonic() after which the bridge clock is taken to be stopped
    kicks: int = 0


@dataclass(eq=False)
class _LegState:
    """Pump-thread side of one call leg: the pjsua2 objects, never touched by the loop."""

    call: _PjCall | None
    leg: SipCallLeg | None = None
    audio: pj.AudioMedia | None = None
    audio_port_id: int = -1
    audio_index: int = -1  # the audio's index in the call's media (for its stream stats)
    rx_watch: RxWatch | None = None  # media.rtp_timeout_s, once media is up
    player: _Player | None = None
    tap_port: _TapPort | None = None
    tap: InbandTap | None = None
    tap_connected: bool = False  # call audio -> tap port (a level-only tap can be detached)
    recorder: pj.AudioMediaRecorder | None = None
    recording_path: Path | None = None
    transfer_reports: int = 0  # TransferResult events since the last transfer()
    outbound: bool = False  # we placed this call (Phone.place_call)
    ringing_reported: bool = False  # outbound: LegRinging sent
    held: bool = False  # the far end holds the call (LegHeld sent, no LegResumed yet)
    moh: MusicOnHold | None = None
    # Bridge connections from this leg's audio: sink leg -> level (media/bridge.py)
    links: dict[_LegState, float] = field(default_factory=dict)
    media_reported: bool = False
    sent_2xx: bool = False  # we answered the INVITE with 2xx (the caller's ACK is due)
    answered: bool = False  # CONFIRMED: the caller's ACK came
    local_hangup: bool = False
    disconnected: bool = False


class _PjLogWriter(pj.LogWriter):  # type: ignore[misc]
    """PJSIP's log into ours: one short line per entry, rate-limited per source address (a
    rejected packet is otherwise logged whole: see media/pjlog.py). Called on PJSIP's
    threads (the pump, the media thread)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self._verbose = verbose  # pjsip_log_level >= 4: whole entries, unlimited (debugging)
        self._limiter = LogLimiter()
        self._lock = threading.Lock()

    def write(self, entry: pj.LogEntry) -> None:
        level = _PJ_LEVEL_TO_LOGGING.get(entry.level, logging.DEBUG)
        if not log.isEnabledFor(level):
            return
        if self._verbose:
            log.log(level, "pjsip: %s", entry.msg.rstrip())
            return
        line, source = summarize(entry.msg)
        with self._lock:
            admitted, held = self._limiter.admit(source, time.monotonic())
        if not admitted:
            return
        if held:
            log.log(level, "pjsip: %s (%d more from %s not logged)", line, held, source)
        else:
            log.log(level, "pjsip: %s", line)


class _PjAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self._phone = phone

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self._phone._on_incoming(self, prm.callId, prm.rdata)

    def onIncomingSubscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:  # noqa: N802
        # PJSUA would accept a presence subscription from anyone (200)
        if not source_allowed(prm.rdata.srcAddress, self._phone._trusted):
            prm.code = 403
            prm.reason = "Forbidden (not from the front)"


class _PjCall(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, account: _PjAccount, call_id: int) -> None:
        super().__init__(account, call_id)
        self._phone = phone
        self.state: _LegState | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        self._phone._on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        self._phone._on_media_state(self)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        self._phone._on_dtmf(self, prm.digit, prm.method)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        # A REFER from the far end would make PJSUA place a call wherever the caller says:
        # toll fraud. The IVR transfers calls itself; it never obeys a REFER. One from a
        # leg we placed (an agent's phone) is handed to the application (LegReferred).
        prm.statusCode = 403
        if not self._phone._on_refer(self, str(prm.dstUri)):
            log.warning("refused a REFER to %s from the far end", prm.dstUri)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        self._phone._on_transfer_status(self, prm.statusCode, prm.reason, prm.finalNotify)


class _TapPort(pj.AudioMediaPort):  # type: ignore[misc]
    """Receives the caller's audio at 8 kHz for the in-band DTMF detector and level meter."""

    def __init__(self, tap: InbandTap) -> None:
        super().__init__()
        self._tap = tap

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self._tap.push(vector_bytes(frame.buf))


def _quietly(fn: Callable[[], None]) -> None:
    """Run ``fn`` with stdout pointed at /dev/null: pjlib prints its start-up banner there
    before our log writer can be installed (that happens in libInit)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        fn()
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        fn()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _destroy_media_port(port: pj.AudioMediaPort) -> None:
    """Destroy a Python-implemented port's C++ side while its Python object is still whole.

    Left to the garbage collector, CPython first clears the object's attributes and then
    runs the C++ destructor, which releases the GIL and waits for a frame callback in
    progress on the clock thread; that callback then runs on a half-freed object
    (AttributeError, then a segfault: seen within some 60 calls with in-band taps).
    Called explicitly, ``~AudioMediaPort`` waits for the callback with the object intact
    and detaches the port from it, and the object is disowned, so that the collector never
    destroys it twice.
    """
    pj.AudioMediaPort.__swig_destroy__(port)


def _wav_header_complete(path: Path) -> bool:
    """PJMEDIA writes the RIFF and data lengths (zero until then) when it closes the file."""
    try:
        with path.open("rb") as f:
            head = f.read(_WAV_HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return False
    if len(head) < _WAV_HEADER_BYTES:
        return False
    riff_len = int.from_bytes(head[4:8], "little")
    data_len = int.from_bytes(head[40:44], "little")
    return riff_len == size - 8 and data_len == size - _WAV_HEADER_BYTES


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Phone:
    """The SIP user agent of one process: accepts calls and runs commands on its legs.

    ``on_incoming`` is called on the asyncio loop with each new :class:`CallLeg`; the callee
    answers, plays and hangs up through the leg's async methods.
    """

    def __init__(self, config: PhoneConfig, on_incoming: Callable[[CallLeg], None]) -> None:
        self.config = config
        self._clock_priority = ClockPriority(config.realtime_priority)
        self._trusted = [Source.parse(s) for s in config.trusted_sources]
        self._refusals = RefusalLog()  # pump thread only
        self._on_incoming_cb = on_incoming
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._commands: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        self._wake_pending = False
        self._wake_sock: socket.socket | None = None
        self._stopping = False
        self._running = False
        self._accepting = True
        # Incoming calls up at once before the next INVITE gets 503 (None: only PJSUA's
        # max_calls); a worker whose callers may need an agent leg keeps slots free for them.
        self._max_inbound: int | None = None
        self._calls: dict[int, _LegState] = {}  # pjsua call id -> state; strong references
        self._dead: list[_LegState] = []
        self._retired_players = _RetiredPlayers()  # pump thread only
        self._closing_recordings: list[_ClosingRecording] = []  # pump thread only
        # Recorders of two-channel recordings still open (media/stereo.py); pump thread only
        self._open_sinks: set[Any] = set()
        timeout_s = config.rtp_timeout_s
        self._rx_check_s = min(_RX_CHECK_MAX_S, max(_RX_CHECK_MIN_S, timeout_s / 4))
        self._next_rx_check_s = 0.0  # pump thread only
        self._legs: dict[int, SipCallLeg] = {}  # loop side: live legs by leg id
        self._next_leg_id = 1
        self._next_playback_id = 1
        self._inband_legs: set[SipCallLeg] = set()
        self._inband_wakeup: asyncio.Event | None = None
        self._inband_task: asyncio.Task[None] | None = None
        self._ep: pj.Endpoint | None = None
        self._account: _PjAccount | None = None
        self._out_account: _PjAccount | None = None  # placed calls via outbound_proxy
        self._log_writer: _PjLogWriter | None = None

    # ------------------------------------------------------------------ loop side

    async def start(self) -> None:
        if self._thread is not None:
            raise PhoneStateError("the phone is already started")
        self._loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._pump_main, args=(started,), name="pjsip-pump", daemon=True
        )
        self._thread.start()
        try:
            await started
        except BaseException:
            await self._loop.run_in_executor(None, self._thread.join)
            raise
        if "udp" in self.config.transports:
            self._wake_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._running = True
        self._inband_wakeup = asyncio.Event()
        self._inband_task = self._loop.create_task(self._inband_poller(), name="inband-dtmf")

    @property
    def running(self) -> bool:
        return self._running

    @property
    def active_legs(self) -> int:
        return len(self._legs)

    def set_accepting(self, accepting: bool) -> None:
        """While not accepting, new INVITEs are answered 503 at once (a draining worker)."""
        self._accepting = accepting

    def set_max_inbound(self, calls: int | None) -> None:
        """With ``calls`` incoming calls up, the next INVITE is answered 503 + Retry-After
        (the front tries another worker); outbound legs do not count. None: no such limit."""
        self._max_inbound = calls

    async def stop(self, grace_s: float = 2.0) -> None:
        """Hang up every leg (BYE, or 503 before answer), wait up to ``grace_s``, destroy."""
        if not self._running or self._loop is None or self._thread is None:
            return
        self._accepting = False
        try:
            await self.submit(self._hangup_all)
        except (PhoneStateError, PjsipError) as exc:
            log.warning("hang-up of all calls at stop: %s", exc)
        deadline = self._loop.time() + grace_s
        while self._legs and self._loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._running = False
        self._stopping = True
        self._wake()
        await self._loop.run_in_executor(None, self._thread.join)
        if self._inband_task is not None:
            self._inband_task.cancel()
            try:
                await self._inband_task
            except asyncio.CancelledError:
                pass
        if self._wake_sock is not None:
            self._wake_sock.close()
        for leg in list(self._legs.values()):
            leg._deliver(LegHungUp(leg.leg_id, HangupSide.LOCAL, 0, "phone stopped", False))
        self._legs.clear()

    async def play(self, state: _LegState, files: Sequence[Path], playback_id: int) -> None:
        """Start a playback on the pump thread. When stopped players still fill every PJSUA
        player slot (a flow restarting prompts faster than every few ms), waits for one to be
        released, for up to a second."""
        for _ in range(_PLAYER_SLOT_TRIES - 1):
            try:
                await self.submit(lambda: self._play(state, files, playback_id))
                return
            except _PlayersBusy:
                await asyncio.sleep(_PLAYER_MIN_HOLD_S / 2)
        await self.submit(lambda: self._play(state, files, playback_id))

    async def place_call(self, uri: str, headers: dict[str, str] | None = None) -> SipCallLeg:
        """Call ``uri`` (through ``outbound_proxy`` if set) with ``headers`` added to the
        INVITE. Returns the leg at once; :class:`LegRinging`, :class:`LegAnswered` or
        :class:`LegFailed` follow as events. ``leg.cancel()`` (CANCEL) ends it unanswered:
        the ring timeout is the caller's to keep."""
        target = check_target(uri)
        extra = check_headers(headers or {})
        if not self._running:
            raise PhoneStateError("the phone is not running")
        leg = SipCallLeg(self, self._next_leg_id, sip_call_id="", remote_uri=target,
                         local_uri="")
        self._next_leg_id += 1
        self._legs[leg.leg_id] = leg
        try:
            state = await self.submit(lambda: self._make_call(leg, target, extra))
        except BaseException:
            self._legs.pop(leg.leg_id, None)
            raise
        leg._handle = state
        return leg

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn`` on the pump thread; the returned future holds its result or error."""
        if self._loop is None or self._stopping:
            raise PhoneStateError("the phone is not running")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._commands.append((fn, fut))
        self._wake()
        return fut

    def _wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        if self._wake_sock is not None:
            try:
                self._wake_sock.sendto(
                    _CRLF_KEEPALIVE, (self.config.bind_address, self.config.sip_port)
                )
            except OSError as exc:  # the pump still runs its commands at its timeout
                log.warning("could not wake the pump: %s", exc)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """From any PJSIP thread: run ``fn(*args)`` on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _post_event(self, leg: SipCallLeg, event: Any) -> None:
        self._post(leg._deliver, event)

    def _leg_created(self, leg: SipCallLeg) -> None:
        self._legs[leg.leg_id] = leg
        self._on_incoming_cb(leg)

    def _leg_media_ready(self, leg: SipCallLeg, event: MediaReady, tap: InbandTap | None) -> None:
        if tap is not None:
            leg._inband = tap
            self._inband_legs.add(leg)
            if self._inband_wakeup is not None:
                self._inband_wakeup.set()
        leg._deliver(event)

    def _leg_ended(self, leg: SipCallLeg, event: LegHungUp) -> None:
        tap = leg._inband
        if tap is not None:
            self._deliver_inband(leg, tap)
        self._inband_legs.discard(leg)
        self._legs.pop(leg.leg_id, None)
        leg._deliver(event)

    def _deliver_inband(self, leg: SipCallLeg, tap: InbandTap) -> None:
        now = self._loop.time() if self._loop is not None else 0.0
        for digit in tap.drain(now):
            leg._deliver(DtmfReceived(leg.leg_id, digit, DtmfMethod.INBAND))
        meter = tap.meter
        if meter is not None:
            leg.heard_voice = meter.heard_voice
            leg.trailing_silence_s = meter.trailing_silence_s(now)

    async def _watch_level(self, leg: SipCallLeg) -> None:
        """Start a new voice-level measurement on ``leg``: reuse its in-band DTMF tap, or
        attach (or reconnect) a level-only one on the pump thread."""
        tap = leg._inband
        if tap is None or not tap.detect_dtmf:
            handle = leg._handle
            tap = await self.submit(lambda: self._attach_level_tap(handle))
            if leg.ended is not None:
                return  # ended meanwhile: its tap was released with the call
            leg._inband = tap
        if tap.detect_dtmf:
            self._deliver_inband(leg, tap)  # frames so far go to the DTMF detector only
        else:
            tap.discard()
        assert self._loop is not None and self._inband_wakeup is not None
        tap.meter = LevelMeter(tap.sample_rate_hz, self._loop.time())
        leg.heard_voice = False
        leg.trailing_silence_s = 0.0
        self._inband_legs.add(leg)
        self._inband_wakeup.set()

    async def _listen(self, leg: SipCallLeg, sink: FrameSink) -> None:
        """Feed the caller's audio to ``sink`` (a speech menu listening) from now on."""
        tap = leg._inband
        if tap is None or not tap.detect_dtmf:
            handle = leg._handle
            tap = await self.submit(lambda: self._attach_level_tap(handle))
            if leg.ended is not None:
                return
            leg._inband = tap
        if tap.detect_dtmf:
            self._deliver_inband(leg, tap)  # frames so far go to the DTMF detector only
        elif tap.meter is None:
            tap.discard()
        tap.listener = sink
        assert self._inband_wakeup is not None
        self._inband_legs.add(leg)
        self._inband_wakeup.set()

    async def _unlisten(self, leg: SipCallLeg) -> None:
        """Stop feeding the listener; a level-only tap nobody needs is disconnected."""
        tap = leg._inband
        if tap is None or tap.listener is None:
            return
        tap.listener = None
        await self._release_tap_if_unused(leg, tap)

    async def _unwatch_level(self, leg: SipCallLeg) -> None:
        """End the measurement: a last update of the leg's figures, then a level-only tap is
        disconnected from the call (kept until the call ends, for the next watch)."""
        tap = leg._inband
        if tap is None or tap.meter is None:
            return
        if leg.ended is None:
            self._deliver_inband(leg, tap)
        tap.meter = None
        await self._release_tap_if_unused(leg, tap)

    async def _release_tap_if_unused(self, leg: SipCallLeg, tap: InbandTap) -> None:
        """Disconnect ``leg``'s in-band tap once nothing uses it (no DTMF detection, no level
        meter, no speech listener): the one rule for every user of the tap."""
        if tap.detect_dtmf or tap.meter is not None or tap.listener is not None:
            return
        self._inband_legs.discard(leg)
        if leg.ended is None:
            handle = leg._handle
            try:
                await self.submit(lambda: self._detach_level_tap(handle))
            except (LegGoneError, PhoneStateError):
                pass
        tap.discard()

    async def _wav_closed(self, path: Path, timeout_s: float) -> None:
        """Wait until PJMEDIA has closed the recorder's WAV (see the module docstring)."""
        assert self._loop is not None
        deadline = self._loop.time() + timeout_s
        while not _wav_header_complete(path):
            if self._loop.time() >= deadline:
                raise PjsipError(f"the recording {path} was not closed within {timeout_s} s")
            await asyncio.sleep(_RECORDER_CLOSE_POLL_S)

    async def _inband_poller(self) -> None:
        """Runs the in-band detector and level meters over queued frames, batched, only while
        legs need it."""
        assert self._inband_wakeup is not None
        while True:
            if not self._inband_legs:
                self._inband_wakeup.clear()
                await self._inband_wakeup.wait()
            listening = any(leg._inband is not None and leg._inband.listener is not None
                            for leg in self._inband_legs)
            await asyncio.sleep(_LISTEN_POLL_S if listening else _INBAND_POLL_S)
            for leg in list(self._inband_legs):
                if leg._inband is not None:
                    try:
                        self._deliver_inband(leg, leg._inband)
                    except Exception:  # a detector bug must not stop the other legs
                        log.exception("in-band detection failed on leg %d", leg.leg_id)

    def new_playback_id(self) -> int:
        pid = self._next_playback_id
        self._next_playback_id += 1
        return pid

    # ------------------------------------------------------------------ pump thread

    def _pump_main(self, started: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            self._init_pjsua()
        except Exception as exc:  # reported to start()'s caller
            err = exc if isinstance(exc, PjsipError) else PjsipError(f"PJSIP start failed: {exc}")
            self._post(_set_exception, started, err)
            self._destroy_pjsua()
            return
        self._post(_set_result, started, None)
        timeout_ms = self.config.pump_timeout_ms if self._wake_sock_possible() else 10
        # With no call up nothing needs a turn but a command (which wakes the pump), a SIP
        # message or a PJSIP timer (libHandleEvents waits no longer than the next one); the
        # timeout only bounds how late a DTMF digit from the media thread is handed over.
        idle_timeout_ms = (max(timeout_ms, _IDLE_PUMP_TIMEOUT_MS) if self._wake_sock_possible()
                           else timeout_ms)
        assert self._ep is not None
        while not self._stopping:
            self._wake_pending = False
            self._run_commands()
            self._reap_dead()
            if self._clock_priority.pending:
                self._clock_priority.poll()
            if self.config.rtp_timeout_s > 0 and self._calls:
                self._check_media_rx()
            if self._closing_recordings:
                self._check_recordings_closed()
                self._ep.libHandleEvents(min(timeout_ms, _RECORDER_CHECK_MS))
            elif self._clock_priority.pending:
                self._ep.libHandleEvents(min(timeout_ms, _CLOCK_LOOK_MS))
            elif self._calls or self._dead or self._retired_players:
                self._ep.libHandleEvents(timeout_ms)
            else:
                self._ep.libHandleEvents(idle_timeout_ms)
        self._run_commands()
        self._shutdown_calls()
        self._destroy_pjsua()

    def _wake_sock_possible(self) -> bool:
        return "udp" in self.config.transports

    def _run_commands(self) -> None:
        while self._commands:
            fn, fut = self._commands.popleft()
            try:
                result = fn()
            except pj.Error as exc:
                self._post(_set_exception, fut, PjsipError(exc.info()))
            except Exception as exc:  # delivered to the awaiting coroutine
                self._post(_set_exception, fut, exc)
            else:
                self._post(_set_result, fut, result)

    def _init_pjsua(self) -> None:
        cfg = self.config
        ep = pj.Endpoint()
        self._ep = ep
        try:
            _quietly(ep.libCreate)
            ep_cfg = pj.EpConfig()
            ua = ep_cfg.uaConfig
            ua.threadCnt = 0
            # No SIP threads: SIP callbacks run on the pump, which alone polls SIP. Not
            # mainThreadOnly: with it, pjsua2 queues what PJMEDIA's threads report (RFC 4733
            # digits, PJSIP's log lines) for the pump's next turn, up to pump_timeout_ms
            # late; without, a digit goes to the loop straight from the media thread
            # (_on_dtmf only posts an event; tests/test_media_dtmf_handover.py).
            ua.mainThreadOnly = False
            ua.maxCalls = cfg.max_calls
            ua.userAgent = cfg.user_agent
            self._log_writer = _PjLogWriter(verbose=cfg.pjsip_log_level >= _PJ_VERBOSE_LEVEL)
            ep_cfg.logConfig.writer = self._log_writer
            ep_cfg.logConfig.level = cfg.pjsip_log_level
            ep_cfg.logConfig.consoleLevel = cfg.pjsip_log_level
            ep_cfg.logConfig.decor = 0
            med = ep_cfg.medConfig
            med.clockRate = cfg.clock_rate_hz
            med.sndClockRate = cfg.clock_rate_hz
            med.channelCount = 1
            med.ecTailLen = 0  # no echo canceller on a server
            med.noVad = True  # keep RTP continuous; callers' jitter buffers prefer it
            med.sndAutoCloseTime = 0  # stop the media clock as soon as no call is up
            med.ptime = 20
            # rtp_thread off: RTP sockets join the SIP ioqueue and no PJMEDIA worker thread
            # polls it; the pump thread's libHandleEvents reads both.
            med.hasIoqueue = cfg.rtp_thread
            med.threadCnt = 1 if cfg.rtp_thread else 0
            ep.libInit(ep_cfg)
            udp_transport: int | None = None
            for kind in cfg.transports:
                tcfg = pj.TransportConfig()
                tcfg.port = cfg.sip_port
                tcfg.boundAddress = cfg.bind_address
                if cfg.public_address:
                    tcfg.publicAddress = cfg.public_address
                ttype = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}[kind]
                tid = ep.transportCreate(ttype, tcfg)
                if kind == "udp":
                    udp_transport = tid
            ep.audDevManager().setNullDev()
            ep.libStart()
            self._set_codecs(ep)
            acfg = pj.AccountConfig()
            acfg.idUri = f"sip:{cfg.local_user}@{cfg.public_address or cfg.bind_address}"
            acfg.idUri += f":{cfg.sip_port}"
            self._set_session_timer(acfg.callConfig)
            self._set_srtp(acfg.mediaConfig)
            mt = acfg.mediaConfig.transportConfig
            mt.port = cfg.rtp_port
            # With an outbound proxy, placed calls have an account of their own, which takes
            # the upper half of the RTP ports (_create_outbound_account).
            mt.portRange = cfg.rtp_port_range // 2 if cfg.outbound_proxy else cfg.rtp_port_range
            mt.boundAddress = cfg.bind_address
            if cfg.public_address:
                mt.publicAddress = cfg.public_address
            self._account = _PjAccount(self)
            self._account.create(acfg, True)
            if cfg.outbound_proxy:
                self._out_account = self._create_outbound_account(acfg, udp_transport)
        except pj.Error as exc:
            raise PjsipError(
                f"PJSIP could not start on {cfg.bind_address}:{cfg.sip_port}: {exc.info()}"
            ) from exc

    def _create_outbound_account(self, acfg: pj.AccountConfig,
                                 udp_transport: int | None) -> _PjAccount:
        """The account placed calls use with an outbound proxy: the proxy as loose route,
        and bound to the UDP transport. PJSIP moves a request of 1300 bytes or more to TCP
        (RFC 3261 18.1.1; an agent INVITE with its X-IVR-* headers and SDP is that big), and
        over TCP it would come from an ephemeral port the front does not know as a worker's;
        bound to UDP, PJSIP falls back to the UDP address. Incoming calls stay on the
        default account (this one is never the default, and its user part differs)."""
        cfg = self.config
        out = pj.AccountConfig()
        host = f"{cfg.public_address or cfg.bind_address}:{cfg.sip_port}"
        out.idUri = f"sip:{cfg.local_user}-out@{host}"
        out.sipConfig.proxies.append(f"sip:{cfg.outbound_proxy};lr")
        if udp_transport is not None:
            out.sipConfig.transportId = udp_transport
        out.callConfig = acfg.callConfig
        out.mediaConfig = acfg.mediaConfig
        # Each account picks RTP ports from its own start: the upper half of the range is
        # this one's, so its legs never try a port a caller's leg holds.
        half = cfg.rtp_port_range // 2
        out.mediaConfig.transportConfig.port = cfg.rtp_port + half + half % 2
        out.mediaConfig.transportConfig.portRange = cfg.rtp_port_range - half - half % 2
        account = _PjAccount(self)
        account.create(out, False)
        return account

    def _set_session_timer(self, call_cfg: pj.AccountCallConfig) -> None:
        """RFC 4028: the session is refreshed (by the caller if it offers to, else by us, with
        UPDATE or re-INVITE at half the interval); an unrefreshed session (no refresh from
        the caller, or no answer to ours) ends with a BYE. Min-SE stays at PJSIP's (and the
        RFC's) 90 s."""
        expires_s = self.config.session_expires_s
        if expires_s <= 0:
            call_cfg.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
            return
        call_cfg.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
        call_cfg.timerSessExpiresSec = expires_s
        call_cfg.timerMinSESec = _MIN_SE_S

    def _set_srtp(self, media_cfg: pj.AccountMediaConfig) -> None:
        """SRTP keyed by SDES (RFC 4568 a=crypto in the SDP), never DTLS. PJSUA by default
        wants SDES only over TLS (keys in clear SDP are readable on the path), but TLS ends
        at the SIP front, and the hop to the worker is loopback or a private network: so
        secure signalling is not required here (docs/architecture.md, SRTP)."""
        media_cfg.srtpUse = _SRTP_USE[self.config.srtp]
        media_cfg.srtpSecureSignaling = 0
        keyings = pj.IntVector()
        keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
        media_cfg.srtpOpt.keyings = keyings

    def _set_codecs(self, ep: pj.Endpoint) -> None:
        wanted = [c.upper() for c in self.config.codecs]
        available = {ci.codecId.upper(): ci.codecId for ci in ep.codecEnum2()}
        for codec_id in available.values():
            ep.codecSetPriority(codec_id, _ALL_CODECS_OFF)
        for rank, name in enumerate(wanted):
            match = [cid for key, cid in available.items() if key.startswith(name)]
            if not match:
                raise PjsipError(f"codec {name!r} is not available in this PJSIP build")
            for cid in match:
                ep.codecSetPriority(cid, 250 - rank)

    def _destroy_pjsua(self) -> None:
        ep = self._ep
        if ep is None:
            return
        # pjsua2 Call and player objects must die before the library does.
        for state in [*self._calls.values(), *self._dead]:
            self._release_media(state)
            self._drop_call(state)
        self._calls.clear()
        self._dead.clear()
        self._retired_players.destroy_all()
        for sink in self._open_sinks:
            sink.audio = None  # the recorder goes while the library is alive
        self._open_sinks.clear()
        for account in (self._out_account, self._account):
            if account is not None:
                try:
                    account.shutdown()
                except pj.Error:
                    pass
        self._account = self._out_account = None
        try:
            ep.libDestroy()
        except pj.Error as exc:
            log.warning("PJSIP destroy reported: %s", exc.info())
        self._ep = None

    def _shutdown_calls(self) -> None:
        """Final hang-up at stop: BYE what is still up, pump until PJSIP reports them gone."""
        assert self._ep is not None
        self._hangup_all()
        for _ in range(100):
            if not any(not s.disconnected for s in self._calls.values()):
                break
            self._ep.libHandleEvents(20)
        self._reap_dead()
        for state in list(self._calls.values()):
            self._release_media(state)

    def _hangup_all(self) -> None:
        for state in list(self._calls.values()):
            if not state.disconnected:
                try:
                    self._hangup(state, 503 if not state.answered else None)
                except pj.Error as exc:  # PJSIP already ended it: its DISCONNECTED follows
                    log.info("hang-up at stop: %s", exc.info())

    # -- callbacks (pump thread)

    def _on_incoming(self, account: _PjAccount, call_id: int, rdata: pj.SipRxData) -> None:
        call = _PjCall(self, account, call_id)
        state = _LegState(call=call)
        call.state = state
        self._calls[call_id] = state
        info = call.getInfo()
        if self._refuse_invite(call, state, rdata.srcAddress, rdata.wholeMsg):
            return
        limit = self._max_inbound
        full = limit is not None and sum(
            1 for other in self._calls.values()
            if other is not state and not other.outbound and not other.disconnected) >= limit
        if not self._accepting or full:
            op = pj.CallOpParam()
            op.statusCode = 503
            op.reason = "Service Unavailable (" + ("busy" if self._accepting else "draining") + ")"
            header = pj.SipHeader()
            header.hName = "Retry-After"
            header.hValue = "5"
            op.txOption.headers.append(header)
            state.local_hangup = True
            call.answer(op)
            log.info("refused a call while %s: %s", "full" if self._accepting else "draining",
                     info.callIdString)
            return
        leg = SipCallLeg(
            self,
            self._next_leg_id,
            sip_call_id=info.callIdString,
            remote_uri=info.remoteUri,
            local_uri=info.localUri,
        )
        self._next_leg_id += 1
        state.leg = leg
        leg._handle = state
        self._post(self._leg_created, leg)

    def _make_call(self, leg: SipCallLeg, uri: str, headers: list[tuple[str, str]]) -> _LegState:
        assert self._account is not None
        account = self._out_account or self._account
        if not self._accepting:
            raise PhoneStateError("the phone is stopping: no new calls")
        call = _PjCall(self, account, pj.PJSUA_INVALID_ID)
        state = _LegState(call=call, leg=leg, outbound=True)
        call.state = state
        op = pj.CallOpParam(True)
        for name, value in headers:
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            op.txOption.headers.append(header)
        try:
            call.makeCall(uri, op)
        except pj.Error:
            self._drop_call(state)
            raise
        self._calls[call.getId()] = state
        info = call.getInfo()
        leg.sip_call_id = info.callIdString
        leg.local_uri = info.localUri
        return state

    def _refuse_invite(self, call: _PjCall, state: _LegState, src: str, msg: str) -> bool:
        """Answer 403 an INVITE from a source not trusted (in the pool: not the front) and
        400 a malformed one (RFC 4475 clerr, mismatch01); True if it was refused."""
        if not source_allowed(src, self._trusted):
            code, reason = 403, "Forbidden (calls come through the front)"
        else:
            problem = invite_problem(msg)
            if problem is None:
                return False
            code, reason = 400, f"Bad Request ({problem})"
        op = pj.CallOpParam()
        op.statusCode = code
        op.reason = reason
        state.local_hangup = True
        call.answer(op)
        suppressed = self._refusals.allow(time.monotonic())
        if suppressed is not None:  # one line a second at most: a flood must not fill the log
            more = f" ({suppressed} more refused since the last line)" if suppressed else ""
            log.warning("refused an INVITE from %s with %d %s%s", src, code, reason, more)
        return True

    def _on_call_state(self, call: _PjCall) -> None:
        state = call.state
        if state is None:
            return
        info = call.getInfo()
        if state.outbound and state.leg is not None:
            self._outbound_progress(state, state.leg, info)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            state.answered = True
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not state.disconnected:
            state.disconnected = True
            # Now, while the bridge clock still runs, so that the WAV gets closed.
            self._release_recorder(state)
            self._dead.append(state)
            # PJSIP's session timer ends an unrefreshed session itself (BYE, 408): ours.
            expired = not state.local_hangup and info.lastReason == _SESSION_EXPIRED_REASON
            if expired and state.leg is not None:
                state.local_hangup = True
                self._post_event(state.leg, SessionExpired(state.leg.leg_id))
            if state.leg is not None:
                side = HangupSide.LOCAL if state.local_hangup else HangupSide.REMOTE
                # PJSIP ends a 2xx never ACKed with 408 once timer H fires (and sends BYE).
                no_ack = (state.sent_2xx and not state.answered
                          and info.lastStatusCode == _SIP_REQUEST_TIMEOUT)
                event = LegHungUp(
                    state.leg.leg_id, side, info.lastStatusCode, info.lastReason, state.answered,
                    no_ack,
                )
                self._post(self._leg_ended, state.leg, event)
            # The Call goes now, not on the next turn: once this callback returns, PJSUA may
            # give the slot to an INVITE read in the same libHandleEvents, and ~Call clears
            # the slot's user data and hangs up whatever call is active in it.
            self._drop_call(state)
            if self._calls.get(info.id) is state:
                del self._calls[info.id]

    def _outbound_progress(self, state: _LegState, leg: SipCallLeg, info: pj.CallInfo) -> None:
        """Ringing, answered or failed: what an outbound call's state change means."""
        if info.state == pj.PJSIP_INV_STATE_EARLY and not state.ringing_reported:
            state.ringing_reported = True
            self._post_event(leg, LegRinging(leg.leg_id, info.lastStatusCode, info.lastReason))
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and not state.answered:
            self._post_event(leg, LegAnswered(leg.leg_id))
        elif (info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not state.answered
              and not state.disconnected):
            self._post_event(leg, LegFailed(leg.leg_id, info.lastStatusCode, info.lastReason))

    def _note_hold(self, state: _LegState, leg: SipCallLeg, status: int) -> None:
        """The far end's hold (its SDP sendonly/inactive: PJSUA's REMOTE_HOLD) and resume."""
        held = status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
        if held and not state.held:
            state.held = True
            self._post_event(leg, LegHeld(leg.leg_id))
        elif status == pj.PJSUA_CALL_MEDIA_ACTIVE and state.held:
            state.held = False
            self._post_event(leg, LegResumed(leg.leg_id))

    def _on_media_state(self, call: _PjCall) -> None:
        state = call.state
        if state is None or state.leg is None or state.disconnected:
            return
        self._clock_priority.expect()
        info = call.getInfo()
        for idx, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            self._note_hold(state, state.leg, media.status)
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self.config.rtp_source == "sdp":
                self._lock_rtp_source(state.leg, call, idx)
            state.audio_index = idx
            if state.rx_watch is None and self.config.rtp_timeout_s > 0:
                state.rx_watch = RxWatch(self.config.rtp_timeout_s)
            audio = call.getAudioMedia(idx)
            port_id = audio.getPortId()
            if port_id != state.audio_port_id:
                state.audio = audio
                state.audio_port_id = port_id
                self._reconnect_media(state)
            if state.media_reported:
                return
            state.media_reported = True
            stream = call.getStreamInfo(idx)
            telephone_event = stream.audTxEventPt > 0 or stream.audRxEventPt > 0
            mode = self.config.inband_dtmf
            want_inband = mode == "always" or (mode == "auto" and not telephone_event)
            tap = self._attach_tap(state) if want_inband else None
            event = MediaReady(
                state.leg.leg_id,
                stream.codecName,
                stream.codecClockRate,
                telephone_event,
                tap is not None,
                self.config.srtp != "off" and self._srtp_active(call),
            )
            self._post(self._leg_media_ready, state.leg, event, tap)
            return

    def _check_media_rx(self) -> None:
        """Every few seconds: has each call's caller sent RTP since the last look?
        (media.rtp_timeout_s; with ``rtp_source: sdp`` only the caller's packets count.)"""
        now = time.monotonic()
        if now < self._next_rx_check_s:
            return
        self._next_rx_check_s = now + self._rx_check_s
        for state in list(self._calls.values()):
            watch, call, leg = state.rx_watch, state.call, state.leg
            if watch is None or call is None or leg is None or state.disconnected:
                continue
            try:
                idx = state.audio_index
                rx_packets = call.getStreamStat(idx).rtcp.rxStat.pkt
                info = call.getInfo()  # kept: its media vector dies with it
            except pj.Error:
                continue  # the stream is being torn down or renegotiated
            receiving = (idx < len(info.media)
                         and bool(info.media[idx].dir & pj.PJMEDIA_DIR_DECODING))
            if watch.update(rx_packets, receiving, now):
                state.rx_watch = None  # reported once
                self._post_event(leg, MediaTimedOut(leg.leg_id, round(watch.silent_s(now), 1)))

    @staticmethod
    def _srtp_active(call: _PjCall) -> bool:
        """pjsua2 2.15 exposes a transport's SRTP state only in the call's dump (pjsua_dump.c
        prints each media transport's "SRTP status: Active" or "Not active")."""
        return "SRTP status: Active" in call.dump(True, "")

    def _lock_rtp_source(self, leg: SipCallLeg, call: _PjCall, idx: int) -> None:
        """Connect the call's RTP and RTCP sockets to the caller's SDP addresses, so that the
        kernel drops media from anyone else (see media/rtp_guard.py). Again after every
        media change: a re-INVITE can move the caller's media."""
        stream = call.getStreamInfo(idx)
        transport = call.getMedTransportInfo(idx)
        done: set[int] = set()
        for local_text, remote_text in ((transport.localRtpName, stream.remoteRtpAddress),
                                        (transport.localRtcpName, stream.remoteRtcpAddress)):
            local, remote = parse_address(local_text), parse_address(remote_text)
            if local is None or remote is None or local[1] in done:
                continue  # on hold (0.0.0.0), or RTCP multiplexed on the RTP port
            done.add(local[1])
            try:
                locked = connect_socket(local[1], remote)
            except OSError as exc:
                log.warning("leg %d: could not restrict RTP on port %d to %s:%d: %s",
                            leg.leg_id, local[1], *remote, exc)
                continue
            if not locked:
                log.warning("leg %d: found no socket on RTP port %d to restrict to %s:%d",
                            leg.leg_id, local[1], *remote)

    def _reconnect_media(self, state: _LegState) -> None:
        """After a re-INVITE the call's conference slot can change: follow it."""
        if state.audio is None:
            return
        if state.player is not None and not state.player.finished:
            state.player.startTransmit(state.audio)
        if state.tap_port is not None and state.tap_connected:
            state.audio.startTransmit(state.tap_port)
        if state.recorder is not None:
            state.audio.startTransmit(state.recorder)
        if state.moh is not None:
            state.moh.connect(state.audio)
        _links.reconnect(state, self._calls.values())

    def _attach_tap(self, state: _LegState, detect_dtmf: bool = True) -> InbandTap:
        assert state.audio is not None
        tap = InbandTap(TAP_CLOCK_RATE_HZ, detect_dtmf=detect_dtmf)
        port = _TapPort(tap)
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, TAP_CLOCK_RATE_HZ, 1, TAP_FRAME_MS * 1000, 16)
        kind = "dtmf" if detect_dtmf else "level"
        port.createPort(f"{kind}-tap-{state.leg.leg_id if state.leg else 0}", fmt)
        state.audio.startTransmit(port)
        state.tap_port = port
        state.tap = tap
        state.tap_connected = True
        return tap

    def _on_dtmf(self, call: _PjCall, digit: str, method: int) -> None:
        """On PJMEDIA's media thread (RFC 4733) or the pump (SIP INFO): post, nothing else."""
        state = call.state
        if state is None or state.leg is None:
            return
        how = DtmfMethod.SIP_INFO if method == pj.PJSUA_DTMF_METHOD_SIP_INFO else DtmfMethod.RFC4733
        self._post_event(state.leg, DtmfReceived(state.leg.leg_id, digit.upper(), how))

    def _on_transfer_status(
        self, call: _PjCall, status_code: int, reason: str, final: bool
    ) -> None:
        state = call.state
        if state is None or state.leg is None:
            return
        first = state.transfer_reports == 0
        state.transfer_reports += 1
        # PJSUA reports a REFER refused (or never answered) once, final, with the response's
        # status; an accepted one first as 100 "Accepted" (200 "Accepted", final, without a
        # subscription), then per NOTIFY. A first report that is final and >= 300 is a
        # refusal. (A NOTIFY overtaking the 202 and reporting failure at once would read as
        # a refusal too; the transfer failed either way.)
        accepted = not (first and final and status_code >= 300)
        event = TransferResult(state.leg.leg_id, accepted, final, status_code, reason)
        self._post_event(state.leg, event)

    def _on_refer(self, call: _PjCall, refer_to: str) -> bool:
        """Pump thread: a REFER on ``call``; handed on (True) only for a leg we placed."""
        state = call.state
        if state is None or state.leg is None or not state.outbound:
            return False
        replaces = "replaces=" in refer_to.lower()
        log.info("REFER from agent leg %s to %s (answered 403; the ACD transfers)",
                 state.leg.leg_id, refer_to)
        self._post_event(state.leg, LegReferred(state.leg.leg_id, refer_to, replaces))
        return True

    # -- commands (pump thread), called through CallLeg

    def _live(self, state: _LegState) -> _PjCall:
        if state.disconnected or state.call is None:
            raise LegGoneError("the call has ended")
        return state.call

    def _answer(self, state: _LegState, status_code: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = status_code
        self._live(state).answer(op)
        if 200 <= status_code < 300:
            state.sent_2xx = True

    def _play(self, state: _LegState, files: Sequence[Path], playback_id: int) -> None:
        self._live(state)
        if state.audio is None or state.leg is None:
            raise LegGoneError("the call has no audio yet")
        self._stop_player(state)
        try:
            player = self._create_player(state.leg, files, playback_id)
        except pj.Error as exc:
            if exc.status != _PJ_ETOOMANY or not self._retired_players:
                raise
            # Every PJSUA player slot is taken, mostly by stopped players still held.
            self._retired_players.reap(room=self._retired_players.max_held)
            try:
                player = self._create_player(state.leg, files, playback_id)
            except pj.Error as again:
                if again.status != _PJ_ETOOMANY:
                    raise
                raise _PlayersBusy(
                    f"every PJSUA player slot is taken ({len(self._retired_players)} stopped "
                    "players are held until PJMEDIA can no longer call them back)") from None
        player.startTransmit(state.audio)
        state.player = player
        self._clock_priority.expect()  # the bridge clock starts with the first connection

    def _create_player(self, leg: SipCallLeg, files: Sequence[Path], playback_id: int) -> _Player:
        player = _Player(lambda event: self._post_event(leg, event), leg.leg_id, playback_id)
        if len(files) == 1:
            player.createPlayer(str(files[0]), pj.PJMEDIA_FILE_NO_LOOP)
        else:
            names = pj.StringVector()
            for f in files:
                names.append(str(f))
            player.createPlaylist(names, f"playlist-{playback_id}", pj.PJMEDIA_FILE_NO_LOOP)
        return player

    def _stop_player(self, state: _LegState) -> None:
        player = state.player
        if player is None:
            return
        state.player = None
        player.finished = True
        if state.audio is not None and not state.disconnected:
            try:
                player.stopTransmit(state.audio)
            except pj.Error:
                pass
        # An ended call's port leaves the bridge with the call, and that disconnects it.
        self._retired_players.add(player)

    def _stop_playback(self, state: _LegState) -> None:
        if not state.disconnected:
            self._stop_player(state)

    def _hangup(self, state: _LegState, status_code: int | None) -> None:
        if state.disconnected or state.call is None:
            return
        state.local_hangup = True
        self._release_recorder(state)  # before the call's media goes: the bridge still ticks
        op = pj.CallOpParam()
        if status_code is not None and not state.answered and not state.outbound:
            op.statusCode = status_code  # our answer to an INVITE; an outbound one: CANCEL
        try:
            state.call.hangup(op)
        except pj.Error as exc:
            if exc.status != _PJSIP_ESESSIONTERMINATED:
                raise
            # The far end (or a timeout) ended the INVITE session first: the hang-up is done,
            # and the DISCONNECTED that tells how is PJSIP's to report, not a failure of ours.
            log.info("hang-up of a session already ended: %s", exc.reason)

    def _send_dtmf(self, state: _LegState, digits: str, method: DtmfMethod) -> None:
        call = self._live(state)
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = (
            pj.PJSUA_DTMF_METHOD_SIP_INFO
            if method == DtmfMethod.SIP_INFO
            else pj.PJSUA_DTMF_METHOD_RFC2833
        )
        call.sendDtmf(prm)

    def _start_recording(self, state: _LegState, path: Path) -> None:
        self._live(state)
        if state.audio is None:
            raise LegGoneError("the call has no audio yet")
        if state.recorder is not None:
            raise LegBusyError("the leg is already recording")
        recorder = pj.AudioMediaRecorder()
        # A WAV, 16-bit PCM, at the bridge's clock rate and channel count (mono).
        recorder.createRecorder(str(path))
        state.recorder = recorder
        state.recording_path = path
        state.audio.startTransmit(recorder)  # the caller's audio only: prompts go the other way

    def _stop_recording(self, state: _LegState) -> bool:
        """Release the recorder (also after the call ended); False if none was running."""
        return self._release_recorder(state)

    def _release_recorder(self, state: _LegState) -> bool:
        recorder = state.recorder
        if recorder is None:
            return False
        state.recorder = None
        path, state.recording_path = state.recording_path, None
        self._retire_recorder(recorder, path)
        return True

    def _retire_recorder(self, recorder: pj.AudioMediaRecorder, path: Path | None) -> None:
        """Let go of a recorder (pump thread) and watch its WAV get closed."""
        # ~AudioMediaRecorder -> pjsua_recorder_destroy: the bridge removes the port on its
        # next tick (pjsua2 queues that removal twice; the second one fails harmlessly), and
        # the WAV writer then flushes and closes the file.
        del recorder
        if path is not None:
            due = time.monotonic() + _RECORDER_KICK_S
            self._closing_recordings.append(_ClosingRecording(path, due))

    def _check_recordings_closed(self) -> None:
        """Make sure released recorders get their WAVs closed.

        When a call ends, PJSUA queues the removal of its port and schedules the sound
        device's idle close (``sndAutoCloseTime = 0``), which happens only if the bridge has
        no connection left. If the bridge ticks between that and our DISCONNECTED callback
        (which releases the recorder), the connections are gone, the null device closes, the
        bridge clock stops, and the recorder's removal waits in the queue, its WAV open, until
        the next call. Seen about once in 30 calls. Reopening the null device runs the
        bridge, which removes the port and closes the file.
        """
        now = time.monotonic()
        kick = False
        pending: list[_ClosingRecording] = []
        for closing in self._closing_recordings:
            if _wav_header_complete(closing.path) or not closing.path.exists():
                continue
            if now < closing.due_s:
                pending.append(closing)
            elif closing.kicks < _RECORDER_KICKS:
                kick = True
                closing.kicks += 1
                closing.due_s = now + _RECORDER_KICK_S
                pending.append(closing)
            else:
                log.warning("the recording %s is still open; PJSIP did not close it", closing.path)
        self._closing_recordings = pending
        if kick and self._ep is not None:
            log.info("recorder: the bridge clock had stopped; reopening the null sound device")
            self._ep.audDevManager().setNullDev()

    def _attach_level_tap(self, state: _LegState) -> InbandTap:
        """The leg's tap for the level meter: its in-band DTMF tap if it has one, else a
        level-only tap (no DTMF detection: digits come by RTP events or SIP INFO)."""
        self._live(state)
        if state.audio is None:
            raise LegGoneError("the call has no audio yet")
        if state.tap is None:
            return self._attach_tap(state, detect_dtmf=False)
        if not state.tap_connected and state.tap_port is not None:
            state.audio.startTransmit(state.tap_port)
            state.tap_connected = True
        return state.tap

    def _detach_level_tap(self, state: _LegState) -> None:
        tap = state.tap
        if tap is None or tap.detect_dtmf or not state.tap_connected:
            return
        state.tap_connected = False
        if state.audio is not None and state.tap_port is not None and not state.disconnected:
            state.audio.stopTransmit(state.tap_port)

    def _transfer(self, state: _LegState, uri: str) -> None:
        call = self._live(state)
        state.transfer_reports = 0
        call.xfer(uri, pj.CallOpParam())

    def _start_moh(self, state: _LegState, path: Path) -> None:
        self._live(state)
        if state.audio is None or state.leg is None:
            raise LegGoneError("the call has no audio yet")
        self._stop_moh(state)
        moh = MusicOnHold(state.leg.leg_id, path)
        moh.connect(state.audio)
        state.moh = moh
        self._clock_priority.expect()

    def _stop_moh(self, state: _LegState) -> None:
        moh, state.moh = state.moh, None
        if moh is not None:
            # An ended call's port leaves the bridge with the call, and that disconnects it.
            moh.retire(None if state.disconnected else state.audio, self._retired_players)

    def _release_media(self, state: _LegState) -> None:
        self._stop_player(state)
        self._stop_moh(state)
        _links.drop(state, self._calls.values())
        self._release_recorder(state)
        port, state.tap_port = state.tap_port, None
        if port is not None:
            # An ended call's port is being removed from the bridge, and that disconnects it.
            if state.audio is not None and state.tap_connected and not state.disconnected:
                try:
                    state.audio.stopTransmit(port)
                except pj.Error:
                    pass
            _destroy_media_port(port)
        state.tap_connected = False
        state.audio = None

    def _reap_dead(self) -> None:
        """Release the media of ended calls (their pjsua2 Call went at DISCONNECTED)."""
        if self._retired_players:
            self._retired_players.reap()
        while self._dead:
            state = self._dead.pop()
            self._release_media(state)
            self._drop_call(state)  # normally gone already, at DISCONNECTED

    @staticmethod
    def _drop_call(state: _LegState) -> None:
        """Let go of the pjsua2 Call on the pump thread, while the library is alive (the loop
        side's CallLeg keeps the state object, but never the Call). Called inside the
        DISCONNECTED callback, the Call is deleted when the callback returns, before PJSUA
        can reuse its slot (pjsua2 documents deleting the Call there)."""
        call = state.call
        if call is not None:
            call.state = None
            state.call = None
            del call
