"""Sensitive entries (``collect`` with ``sensitive: true``: card numbers, PINs): the digits
reach the flow's variables and nothing else — not the notes the store keeps, not the log.

The interpreter is driven by the fake driver; the session by a fake leg and recorder (no
SIP here: tests/test_call_records.py makes the same call through a real worker)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from ivr.flow import FlowError, Note
from ivr.flow.interpreter import MASK
from ivr.session import CallSession
from media import DtmfMethod, DtmfReceived, HangupSide, LegHungUp, MediaReady, PlaybackFinished
from tests.flow_driver import FakeCall
from tests.test_flow_nodes import make_flow

PIN = {"type": "collect", "prompts": ["enter_account"], "var": "pin", "min_digits": 4,
       "max_digits": 4, "sensitive": True, "next": "done", "on_failure": "failed"}


def _all_note_text(call: FakeCall) -> str:
    return repr([a.data for a in call.actions if isinstance(a, Note)])


def test_a_sensitive_collect_keeps_its_digits_in_the_variable_and_masks_every_note() -> None:
    call = FakeCall(make_flow({"ask": PIN})).play("start done 9 7 3 1")
    assert call.run.vars["pin"] == "9731"
    assert call.notes("dtmf") == [{"digit": MASK, "node": "ask"}] * 4
    assert call.notes("collect.done") == [{"node": "ask", "var": "pin", "digits": "XXXX"}]
    assert "9" not in _all_note_text(call) and "731" not in _all_note_text(call)
    assert call.hangups()[0].reason == "done"


def test_a_refused_sensitive_entry_is_masked_in_its_note_too() -> None:
    call = FakeCall(make_flow({"ask": {**PIN, "validate": {"luhn": True}}}))
    call.play("start done 1 2 3 4")
    assert call.notes("collect.invalid")[0]["digits"] == "XXXX"


def test_keys_typed_ahead_into_a_sensitive_collect_are_masked() -> None:
    flow = make_flow({
        "intro": {"type": "play", "prompts": ["welcome"], "barge_in": True, "next": "ask"},
        "ask": PIN,
    })
    call = FakeCall(flow).play("start 5 6 7 8")
    assert call.run.vars["pin"] == "5678"
    assert [n["digit"] for n in call.notes("dtmf")] == [MASK] * 4


def test_a_copy_of_a_sensitive_variable_is_masked_and_ordinary_entries_are_not() -> None:
    flow = make_flow({
        "ask": {**PIN, "next": "copy"},
        "copy": {"type": "set", "vars": {"last4": "{pin}", "greeting": "hi"}, "next": "menu"},
        "menu": {"type": "menu", "prompts": ["main_menu"], "choices": {"1": "acct"},
                 "on_failure": "failed"},
        "acct": {"type": "collect", "prompts": ["enter_account"], "var": "account",
                 "min_digits": 2, "max_digits": 2, "next": "done", "on_failure": "failed"},
    })
    call = FakeCall(flow).play("start done 4 3 2 1 done 1 done 5 5")
    assert call.notes("vars.set") == [{"node": "copy", "vars": {"last4": "XXXX",
                                                               "greeting": "hi"}}]
    assert call.run.vars["last4"] == "4321"
    assert [n["digit"] for n in call.notes("dtmf")] == [MASK] * 4 + ["1", "5", "5"]
    assert call.notes("collect.done")[1]["digits"] == "55"


@pytest.mark.parametrize(("extra", "message"), [
    ({"ask": {**PIN, "confirm": {}}}, "confirm reads the digits back"),
    ({"ask": {**PIN, "next": "say"},
      "say": {"type": "say", "kind": "digits", "value": "{pin}", "next": "done"}},
     "say reads out {pin}, which holds a sensitive collect's digits"),
    ({"ask": {**PIN, "next": "copy"},
      "copy": {"type": "set", "vars": {"x": "0{pin}"}, "next": "say"},
      "say": {"type": "say", "kind": "digits", "value": "{x}", "next": "done"}},
     "say reads out {x}"),
    ({"ask": {**PIN, "next": "xfer"},
      "xfer": {"type": "transfer", "to": "sip:{pin}@pbx.example", "on_failure": "failed"}},
     "transfer sends as a SIP URI {pin}"),
])
def test_a_flow_that_would_disclose_a_sensitive_entry_is_refused(
        extra: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowError) as err:
        make_flow(extra)
    assert message in str(err.value)


# -- the session: what reaches the store and the log -----------------------------------------


class FakeLeg:
    """Answers, plays every prompt to its end at once, and takes the BYE."""

    leg_id = 1
    remote_uri = '"Caller" <sip:+15550100@127.0.0.1>'
    local_uri = "<sip:ivr@127.0.0.1>"
    sip_call_id = "fake-1"
    heard_voice = False
    trailing_silence_s = 0.0

    def __init__(self) -> None:
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.current_playback_id = 0
        self.played: list[list[Path]] = []

    async def next_event(self) -> Any:
        return await self.events.get()

    async def answer(self, status_code: int = 200) -> None:
        self.events.put_nowait(MediaReady(1, "PCMU", 8000, True, False))

    async def play(self, files: list[Path]) -> int:
        self.current_playback_id += 1
        self.played.append(files)
        self.events.put_nowait(PlaybackFinished(1, self.current_playback_id))
        return self.current_playback_id

    async def stop_playback(self) -> None:
        self.current_playback_id = 0

    async def hangup(self, status_code: int | None = None) -> None:
        self.events.put_nowait(LegHungUp(1, HangupSide.LOCAL, 200, "OK", True))


class Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.ops.append((name, args, kwargs))


class Prompts:
    def path(self, name: str) -> Path:
        return Path(f"/prompts/{name}.wav")


def test_the_session_stores_and_logs_a_sensitive_entry_masked(
        caplog: pytest.LogCaptureFixture) -> None:
    flow = make_flow({"ask": {**PIN, "next": "bye"}, "bye": {"type": "hangup"}})
    store = Recorder()

    async def call() -> None:
        leg = FakeLeg()
        session = CallSession(leg, flow, {"en-US": Prompts()}, store, "w1")  # type: ignore
        task = asyncio.ensure_future(session.run_call())
        for _ in range(20):  # the prompt has played: the collect waits for digits
            await asyncio.sleep(0)
        for digit in "9731":
            leg.events.put_nowait(DtmfReceived(1, digit, DtmfMethod.RFC4733))
        await asyncio.wait_for(task, 5)
        assert session.run.vars["pin"] == "9731"

    with caplog.at_level(logging.DEBUG):
        asyncio.run(call())
    dtmf = [kw["digit"] for name, _, kw in store.ops if name == "call_dtmf"]
    assert dtmf == [MASK] * 4
    ended = [kw for name, _, kw in store.ops if name == "call_ended"]
    assert ended and ended[0]["reason"] == "normal"
    stored = repr(store.ops)
    logged = repr([(r.getMessage(), getattr(r, "fields", None)) for r in caplog.records])
    for text in (stored, logged):
        # the PIN as a number of its own (a timestamp such as 396.009731 may hold its digits)
        assert not re.search(r"(?<![\d.])9731(?!\d)", text)
        assert "'9'" not in text and "digit_9" not in text
    assert "call.dtmf" in logged
