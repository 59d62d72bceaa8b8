"""The telephony core: PJSIP's endpoint, call legs, prompt playback, DTMF, recording, voice
level and blind transfer.

This is the only package that imports ``pjsua2``; everything above it uses the async
:class:`CallLeg` and the frozen events of :mod:`media.events`.
"""

from .errors import LegBusyError, LegGoneError, MediaError, PhoneStateError, PjsipError, PromptError
from .events import (
    DtmfMethod,
    DtmfReceived,
    HangupSide,
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHeld,
    LegHungUp,
    LegReferred,
    LegResumed,
    LegRinging,
    MediaReady,
    MediaTimedOut,
    PlaybackFinished,
    SessionExpired,
    TransferResult,
)
from .leg import CallLeg, SipCallLeg

__all__ = [
    "CallLeg",
    "DtmfMethod",
    "DtmfReceived",
    "HangupSide",
    "LegAnswered",
    "LegBusyError",
    "LegEvent",
    "LegFailed",
    "LegGoneError",
    "LegHeld",
    "LegHungUp",
    "LegResumed",
    "LegRinging",
    "MediaError",
    "MediaReady",
    "MediaTimedOut",
    "PhoneStateError",
    "PjsipError",
    "PlaybackFinished",
    "PromptError",
    "SessionExpired",
    "SipCallLeg",
    "LegReferred",
    "TransferResult",
]
