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
    LegEvent,
    LegHungUp,
    MediaReady,
    MediaTimedOut,
    PlaybackFinished,
    SessionExpired,
    TransferResult,
)
from .leg import CallLeg

__all__ = [
    "CallLeg",
    "DtmfMethod",
    "DtmfReceived",
    "HangupSide",
    "LegBusyError",
    "LegEvent",
    "LegGoneError",
    "LegHungUp",
    "MediaError",
    "MediaReady",
    "MediaTimedOut",
    "PhoneStateError",
    "PjsipError",
    "PlaybackFinished",
    "PromptError",
    "SessionExpired",
    "TransferResult",
]
