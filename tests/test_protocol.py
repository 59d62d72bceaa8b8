"""The controller protocol's wire format and validation (pure; no sockets)."""

from __future__ import annotations

import json

import pytest

from ivr.protocol import (
    MAX_LINE_BYTES,
    STORE_OPS,
    ProtocolError,
    check_store_op,
    decode,
    encode,
)


def test_messages_are_one_json_object_per_line() -> None:
    raw = encode("stats", legs=3, state="serving")
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert decode(raw) == {"type": "stats", "legs": 3, "state": "serving"}


@pytest.mark.parametrize("line, message", [
    (b"not json\n", "not a JSON object"),
    (b"[1, 2]\n", "a message is a JSON object with a string 'type'"),
    (b'{"legs": 1}\n', "a message is a JSON object with a string 'type'"),
    (b'{"type": 7}\n', "a message is a JSON object with a string 'type'"),
    (b"\xff\xfe\n", "not a JSON object"),
])
def test_malformed_lines_are_refused_with_a_reason(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode(line)


def test_an_oversized_line_is_refused() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(b"{" + b" " * MAX_LINE_BYTES + b"}")


def _store(op: str, **args: object) -> dict[str, object]:
    return json.loads(encode("store", op=op, call_id="c1", at=12.5, args=args))  # type: ignore[no-any-return]


def test_every_store_op_round_trips_with_its_arguments() -> None:
    for op, names in STORE_OPS.items():
        args = {name: "x" for name in names}
        assert check_store_op(_store(op, **args)) == (op, "c1", 12.5, args)


def test_store_op_names_match_the_call_store_methods() -> None:
    from ivr.link import RemoteRecorder
    from ivr.store import CallStore

    for op in STORE_OPS:
        assert callable(getattr(CallStore, op))
        assert callable(getattr(RemoteRecorder, op))


@pytest.mark.parametrize("msg, message", [
    ({"type": "store", "op": "drop_table", "call_id": "c", "at": 1, "args": {}},
     "unknown store op 'drop_table'"),
    ({"type": "store", "op": "call_node", "call_id": 5, "at": 1, "args": {}},
     "call_id must be a string"),
    ({"type": "store", "op": "call_node", "call_id": "c", "at": 1, "args": []},
     "args must be an object"),
    ({"type": "store", "op": "call_node", "call_id": "c", "at": 1,
      "args": {"node": "a", "node_type": "menu", "sql": "x"}}, r"unknown args \['sql'\]"),
    ({"type": "store", "op": "call_node", "call_id": "c", "at": 1, "args": {"node": "a"}},
     r"missing args \['node_type'\]"),
])
def test_bad_store_messages_are_refused_with_a_reason(msg: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        check_store_op(msg)
