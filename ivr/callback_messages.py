"""The wire messages of queued callbacks (registered with ``ivr/messages.py``'s others;
imported by both ends: ``ivr/acd_callback_service.py`` and the worker's queue call).

Worker -> controller: ``CallbackRequest`` (the waiting caller keyed the callback option and
confirmed the number). Controller -> worker: ``CallbackTaken`` (the callback holds the
caller's place: tell them when to expect the call, then hang up) or ``CallbackRefused``
(the caller goes on waiting). docs/protocol.md ("Queued callbacks").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import Message, message


@message("acd.callback_request")
@dataclass(frozen=True)
class CallbackRequest(Message):
    """Call the caller back at ``number``, keeping their place; ``data`` as Join's."""

    number: str
    data: dict[str, str] = field(default_factory=dict)


@message("acd.callback_taken")
@dataclass(frozen=True)
class CallbackTaken(Message):
    """The callback ``callback_id`` holds the caller's place (``position``, 1 = next);
    ``updated``: the number already had one in this queue, which was updated."""

    callback_id: str
    queue: str
    position: int
    estimated_wait_s: int
    updated: bool = False


@message("acd.callback_refused")
@dataclass(frozen=True)
class CallbackRefused(Message):
    """No callback (the queue takes none, not a number): the caller keeps waiting."""

    reason: str


# ---- the callback call itself: placed by a worker with a free slot (ivr/callback_call.py)


@message("acd.callback_offer")
@dataclass(frozen=True)
class CallbackOffer(Message):
    """Controller -> a worker with a free slot: ring the agent at ``uri`` for callback
    ``call_id`` (its id, ``cb-<call>``); reported as for a queued call (``acd.ringing``,
    ``acd.answered``, ``acd.offer_failed``)."""

    offer_id: str
    agent_id: str
    uri: str
    queue: str
    number: str
    wait_s: float
    ring_timeout_s: float
    record: bool = False
    data: dict[str, str] = field(default_factory=dict)


@message("acd.dial_customer")
@dataclass(frozen=True)
class DialCustomer(Message):
    """Controller -> that worker: the agent took it; call the customer at ``uri``; no
    answer within ``no_answer_s`` is ``no_answer``."""

    offer_id: str
    uri: str
    no_answer_s: float
    voicemail_answer_s: float = 0.0  # answered sooner after ringing: voicemail (0: off)
    voicemail_greeting_s: float = 0.0  # this long continuous speech: voicemail (0: off)


@message("acd.customer_answered")
@dataclass(frozen=True)
class CustomerAnswered(Message):
    """Worker -> controller: the customer answered (the legs wait for ``acd.connect``)."""


@message("acd.customer_not_reached")
@dataclass(frozen=True)
class CustomerNotReached(Message):
    """Worker -> controller: ``outcome`` no_answer, busy, voicemail or failed."""

    outcome: str
    sip_code: int = 0
