"""Events a call leg reports, as frozen dataclasses named for what happened.

They are built on PJSIP's threads from pjsua2's callback parameters and handed to the
asyncio loop; nothing above ``media/`` ever sees a pjsua2 object.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DtmfMethod(StrEnum):
    """How a DTMF digit reached us."""

    RFC4733 = "rfc4733"  # RTP telephone-event (RFC 4733, formerly RFC 2833)
    SIP_INFO = "sip-info"  # SIP INFO, application/dtmf-relay or application/dtmf
    INBAND = "inband"  # tones inside the audio, found by our Goertzel detector


class HangupSide(StrEnum):
    """Which side ended the call."""

    REMOTE = "remote"
    LOCAL = "local"


@dataclass(frozen=True)
class LegEvent:
    leg_id: int


@dataclass(frozen=True)
class MediaReady(LegEvent):
    """Audio is flowing: the negotiated codec, whether DTMF can come as RTP events, and
    whether the media is SRTP (SDES keys in our answer)."""

    codec: str
    clock_rate_hz: int
    telephone_event: bool
    inband_dtmf: bool
    srtp: bool = False


@dataclass(frozen=True)
class DtmfReceived(LegEvent):
    digit: str
    method: DtmfMethod


@dataclass(frozen=True)
class PlaybackFinished(LegEvent):
    playback_id: int


@dataclass(frozen=True)
class LegHungUp(LegEvent):
    """The leg is over. ``status_code``/``reason`` are the last SIP status PJSIP saw.

    ``answered`` is set once the caller's ACK confirmed the call. ``no_ack``: we answered 2xx
    and the caller never ACKed it; PJSIP gave up retransmitting the 200 (RFC 3261 timer H,
    64*T1 = 32 s) and ended the dialog with a BYE of its own (``side`` is REMOTE then: the
    hang-up was not asked for by us).
    """

    side: HangupSide
    status_code: int
    reason: str
    answered: bool
    no_ack: bool = False


@dataclass(frozen=True)
class MediaTimedOut(LegEvent):
    """No RTP from the caller for ``silent_s`` (at least ``media.rtp_timeout_s``) while the
    call was not on hold: the caller is most likely gone without a BYE. Reported once; the
    leg stays up until someone hangs it up."""

    silent_s: float


@dataclass(frozen=True)
class SessionExpired(LegEvent):
    """The SIP session timer ran out (RFC 4028): the caller did not refresh the session, or
    did not answer our refresh. PJSIP sends the BYE itself; the LegHungUp follows."""


@dataclass(frozen=True)
class TransferResult(LegEvent):
    """Progress of a blind transfer (``CallLeg.transfer``): one per report PJSIP makes.

    ``accepted`` says whether the far end accepted the REFER. An accepted REFER is reported
    first as 100 "Accepted" (or 200 "Accepted", final, when the far end suppressed the
    subscription with ``Refer-Sub: false``), then once per NOTIFY with the status line of its
    ``message/sipfrag`` body; ``final`` is set on the last (``Subscription-State:
    terminated``). A refused REFER (403, 405, 501...) or one never answered (reported as 500
    by PJSIP) gives one event with ``accepted=False, final=True`` and the response's status.
    What to do next (a blind transfer that reached 2xx: hang up) is the caller's decision.
    """

    accepted: bool
    final: bool
    status_code: int
    reason: str


@dataclass(frozen=True)
class LegReferred(LegEvent):
    """The far end of a leg *we placed* (an agent's phone) sent REFER: it wants its caller
    transferred to ``refer_to``; ``replaces``: the Refer-To carries Replaces (an attended
    transfer from the phone). PJSUA cannot accept a REFER without dialling the target
    itself, so the REFER is answered 403 and never obeyed; the application carries the
    transfer out its own way (the ACD) and ends the leg with BYE."""

    refer_to: str
    replaces: bool


@dataclass(frozen=True)
class LegRinging(LegEvent):
    """An outbound leg's far end is alerting (180) or sends early media (183); reported
    once, with the first such status."""

    status_code: int
    reason: str


@dataclass(frozen=True)
class LegAnswered(LegEvent):
    """An outbound leg was answered: the far end's 2xx came and we ACKed it."""


@dataclass(frozen=True)
class LegFailed(LegEvent):
    """An outbound leg ended before it was answered: refused (486, 603...), unreachable
    (408, 503), or cancelled by us (487). The :class:`LegHungUp` that ends every leg
    follows."""

    status_code: int
    reason: str


@dataclass(frozen=True)
class LegHeld(LegEvent):
    """The far end put the call on hold: a re-INVITE (or UPDATE) whose SDP says
    ``sendonly`` or ``inactive`` (RFC 3264 section 8.4)."""


@dataclass(frozen=True)
class LegResumed(LegEvent):
    """The far end took the call off hold: its SDP says ``sendrecv`` (or ``recvonly``)
    again."""
