"""Errors raised by the media layer.

    MediaError
     ├── PhoneStateError      the phone is not running (not started, or stopping)
     ├── LegGoneError         the call leg has ended; the operation cannot apply
     ├── LegBusyError         the leg already runs such an operation (one recording)
     ├── PromptError          a prompt file is missing or not in a playable format
     └── PjsipError           PJSIP refused an operation (its message is kept)
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every error the media layer raises."""


class PhoneStateError(MediaError):
    pass


class LegGoneError(MediaError):
    pass


class LegBusyError(MediaError):
    """The leg already runs an operation of this kind (one recording at a time)."""


class PromptError(MediaError):
    pass


class PjsipError(MediaError):
    pass
