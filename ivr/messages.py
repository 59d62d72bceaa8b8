"""Typed messages between workers and the controller for calls in the ACD.

Each message is a frozen dataclass registered under its wire ``type`` (its id, e.g.
``acd.join``). Every one names the call it is about (``call_id``): the controller routes a
message to the worker holding that call, a worker to that call's session. On the wire a
message is the protocol's JSON line (``ivr/protocol.py``) with the dataclass's fields;
``to_wire`` / ``from_wire`` convert, and ``from_wire`` checks every field's presence and
type, so a bad message is refused whole with a message that names the field.

Worker -> controller: ``Join``, ``OfferRinging``, ``OfferAnswered``, ``OfferFailed``,
``CallerGone``, ``AgentGone``, ``LeftWithKey``, ``Held``, ``Resumed``.
Controller -> worker: ``Queued``, ``Announce``, ``Exit``, ``Offer``, ``CancelOffer``,
``Connect``, ``Requeued``. docs/protocol.md ("Calls in the ACD") says when each is sent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .protocol import ProtocolError, encode

MESSAGES: dict[str, type[Message]] = {}

M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""
    call_id: str


def message(wire_type: str) -> typing.Callable[[type[M]], type[M]]:
    """Register a message class under its wire type."""

    def register(cls: type[M]) -> type[M]:
        if wire_type in MESSAGES:
            raise ValueError(f"message type {wire_type!r} registered twice")
        cls.TYPE = wire_type
        MESSAGES[wire_type] = cls
        return cls

    return register


# ---- worker -> controller ------------------------------------------------------------


@message("acd.join")
@dataclass(frozen=True)
class Join(Message):
    """The flow reached a queue node. ``data``: what the agent sees (the IVR's variables:
    caller, caller_name, account, language, what the menus collected)."""

    queue: str
    priority: int = 0
    skills: tuple[str, ...] = ()
    caller: str = ""
    data: dict[str, str] = field(default_factory=dict)


@message("acd.ringing")
@dataclass(frozen=True)
class OfferRinging(Message):
    """The agent's phone rings (its first 180/183): the offer latency ends here."""

    offer_id: str


@message("acd.answered")
@dataclass(frozen=True)
class OfferAnswered(Message):
    """The agent's phone answered (200 OK, ACKed). The worker keeps the leg unbridged (the
    caller still hears music) until ``Connect``, or hangs it up on ``CancelOffer``."""

    offer_id: str


@message("acd.offer_failed")
@dataclass(frozen=True)
class OfferFailed(Message):
    """The agent leg failed. ``reason``: ``no_answer`` (408/480, or no final answer),
    ``rejected`` (486/600/603 and other refusals), ``error`` (the worker could not place it:
    no free leg, bad URI). ``sip_code``: the final answer, 0 if none."""

    offer_id: str
    reason: str
    sip_code: int = 0


@message("acd.caller_gone")
@dataclass(frozen=True)
class CallerGone(Message):
    """The caller's leg ended while the call was in the ACD (waiting, ringing or bridged)."""


@message("acd.agent_gone")
@dataclass(frozen=True)
class AgentGone(Message):
    """The agent's leg of a bridged call ended; the caller goes on at ``after_agent``."""


@message("acd.left_with_key")
@dataclass(frozen=True)
class LeftWithKey(Message):
    key: str


@message("acd.held")
@dataclass(frozen=True)
class Held(Message):
    """The agent's phone put the call on hold (re-INVITE sendonly/inactive)."""


@message("acd.resumed")
@dataclass(frozen=True)
class Resumed(Message):
    pass


# ---- controller -> worker ------------------------------------------------------------


@message("acd.queued")
@dataclass(frozen=True)
class Queued(Message):
    """The call waits in ``queue`` (music on hold) at ``position`` (1 = next)."""

    queue: str
    position: int
    estimated_wait_s: int


@message("acd.announce")
@dataclass(frozen=True)
class Announce(Message):
    """Tell the waiting caller their position and estimated wait."""

    queue: str
    position: int
    estimated_wait_s: int


@message("acd.exit")
@dataclass(frozen=True)
class Exit(Message):
    """The call leaves the ACD without an agent: the flow goes on at ``target`` (a node),
    or at the queue node's ``on_unavailable`` when ``target`` is empty. ``reason``:
    ``full``, ``no-agents``, ``timeout``, ``refused`` (unknown queue, no ACD)."""

    queue: str
    reason: str
    target: str = ""


@message("acd.offer")
@dataclass(frozen=True)
class Offer(Message):
    """Ring ``uri`` (the agent's address at the front) for ``ring_timeout_s``; the worker
    adds the caller's data as headers. ``record``: record the agent segment."""

    offer_id: str
    agent_id: str
    uri: str
    queue: str
    wait_s: float
    ring_timeout_s: float
    record: bool = False


@message("acd.cancel")
@dataclass(frozen=True)
class CancelOffer(Message):
    """Stop ringing (CANCEL), or hang up (BYE) an agent leg that answered too late.
    ``reason``: no-answer, answered-elsewhere, caller-gone, agent-state, answered-too-late."""

    offer_id: str
    reason: str


@message("acd.connect")
@dataclass(frozen=True)
class Connect(Message):
    """The offer's agent has the call: bridge the two legs (music stops)."""

    offer_id: str
    agent_id: str


@message("acd.requeued")
@dataclass(frozen=True)
class Requeued(Message):
    """Back to waiting at ``position`` after a ring no answer (music on hold again)."""

    queue: str
    position: int


# ---- the wire --------------------------------------------------------------------------


def to_wire(msg: Message) -> bytes:
    fields = dataclasses.asdict(msg)
    return encode(msg.TYPE, **{k: list(v) if isinstance(v, tuple) else v
                               for k, v in fields.items()})


def is_message(raw: dict[str, Any]) -> bool:
    return raw.get("type") in MESSAGES


def from_wire(raw: dict[str, Any]) -> Message:
    """The message of a decoded JSON object; ProtocolError names what is wrong."""
    wire_type = str(raw.get("type"))
    cls = MESSAGES.get(wire_type)
    if cls is None:
        raise ProtocolError(f"unknown message type {wire_type!r}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING):
                raise ProtocolError(f"{wire_type}: missing field {f.name!r}")
            continue
        values[f.name] = _check(wire_type, f.name, hints[f.name], raw[f.name])
    unknown = set(raw) - {f.name for f in dataclasses.fields(cls)} - {"type"}
    if unknown:
        raise ProtocolError(f"{wire_type}: unknown fields {sorted(unknown)}")
    return cls(**values)


def _check(wire_type: str, name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    bad = ProtocolError(f"{wire_type}: field {name!r} must be {_describe(hint)}, "
                        f"not {type(value).__name__}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if hint is int or hint is str or hint is bool:
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise bad
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise bad
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{wire_type}.{name}: unions are not used in messages")
    raise TypeError(f"{wire_type}.{name}: no wire check for {hint!r}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "a list of strings"
    if origin is dict:
        return "an object of strings"
    return {float: "a number", int: "an integer", str: "a string", bool: "a boolean"}.get(
        hint, str(hint))


# Queued callbacks' messages live in their own module and register here as well.
from . import callback_messages as _callback_messages  # noqa: E402, F401
