"""The typed ACD messages: every one crosses the wire unchanged; a bad one is refused whole
with the field named."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ivr import supervision_messages, transfer_messages  # noqa: F401 - registers theirs
from ivr.callback_messages import CallbackOffer, CallbackRequest
from ivr.messages import MESSAGES, Join, Offer, Queued, from_wire, to_wire
from ivr.protocol import ProtocolError, decode


def test_every_message_type_round_trips() -> None:
    samples = {
        "acd.join": Join("c1", "sales", 2, ("spanish",), "1000", {"account": "42"}),
        "acd.offer": Offer("c1", "c1#3", "1001", "sip:1001@example", "sales", 3.5, 15.0, True),
        "acd.queued": Queued("c1", "sales", 1, 30),
        "acd.conference": transfer_messages.Conference("c1", ("1001", "1002")),
        "acd.callback_request": CallbackRequest("c1", "+3312345", {"account": "42"}),
        "acd.callback_offer": CallbackOffer("cb-c1", "cb-c1#4", "1001", "sip:1001@x", "sales",
                                            "5550001", 12.5, 15.0, True, {"a": "b"}),
    }
    for wire_type, cls in MESSAGES.items():
        msg = samples.get(wire_type)
        if msg is None:
            hints = typing.get_type_hints(cls)
            example = {str: "x", int: 1, float: 1.5, bool: True}
            msg = cls(**{f.name: example[hints[f.name]] for f in dataclasses.fields(cls)})
        assert from_wire(decode(to_wire(msg))) == msg
        assert decode(to_wire(msg))["type"] == wire_type


@pytest.mark.parametrize("raw, says", [
    ({"type": "acd.offer", "call_id": "c"}, "missing field 'offer_id'"),
    ({"type": "acd.queued", "call_id": "c", "queue": "s", "position": "1",
      "estimated_wait_s": 3}, "'position' must be an integer"),
    ({"type": "acd.join", "call_id": "c", "queue": "s", "data": {"a": 1}},
     "'data' must be an object of strings"),
    ({"type": "acd.caller_gone", "call_id": "c", "extra": 1}, "unknown fields ['extra']"),
    ({"type": "acd.nope", "call_id": "c"}, "unknown message type 'acd.nope'"),
    ({"type": "acd.queued", "call_id": "c", "queue": "s", "position": True,
      "estimated_wait_s": 3}, "'position' must be an integer, not bool"),
])
def test_a_bad_message_is_refused_naming_the_field(raw: dict, says: str) -> None:
    with pytest.raises(ProtocolError, match=says.replace("[", r"\[").replace("]", r"\]")):
        from_wire(raw)
