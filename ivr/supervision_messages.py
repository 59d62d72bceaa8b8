"""Messages for supervising a call (listen, whisper, barge): the same registry and wire form
as ``ivr/messages.py``; importing this module registers them. docs/protocol.md.

Controller -> worker: ``Supervise``, ``SuperviseMode``, ``SuperviseEnd``.
Worker -> controller: ``SupervisorGone``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Message, message

MODES = ("listen", "whisper", "barge")


@message("acd.supervise")
@dataclass(frozen=True)
class Supervise(Message):
    """Call the supervisor's phone at ``uri`` (through the front, as agent legs) and put it
    in the call's bridge as ``mode`` says: listen (hears caller and agent), whisper (and the
    agent hears the supervisor), barge (all three hear each other)."""

    supervisor: str
    uri: str
    mode: str


@message("acd.supervise_mode")
@dataclass(frozen=True)
class SuperviseMode(Message):
    """Switch the supervisor's leg to ``mode`` (no new leg)."""

    mode: str


@message("acd.supervise_end")
@dataclass(frozen=True)
class SuperviseEnd(Message):
    """Hang up the supervisor's leg."""


@message("acd.supervisor_gone")
@dataclass(frozen=True)
class SupervisorGone(Message):
    """The supervisor's leg ended or never came up (``reason``: hangup, failed, error)."""

    supervisor: str
    reason: str


TO_WORKER = (Supervise, SuperviseMode, SuperviseEnd)


def levels(mode: str) -> tuple[float, float]:
    """(agent hears the supervisor, caller hears the supervisor) for ``mode``; the
    supervisor always hears both."""
    return {"listen": (0.0, 0.0), "whisper": (1.0, 0.0), "barge": (1.0, 1.0)}[mode]
