"""The wrap-up outbox survives the softphone quitting (softphone/outbox.py and the
session's restore): written atomically, read back in order, sent once signed in, and a
re-sent one the server already has is dropped without troubling the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone import outbox
from softphone.model import InvalidStateError, Link, SendWrapUp, WrapUp
from softphone.session import AgentSession
from tests.test_softphone_session import T0, ended, on_call, view


def test_the_outbox_is_written_whole_and_read_back_in_the_order_typed(tmp_path: Path
                                                                       ) -> None:
    path = outbox.outbox_path("1001", tmp_path)
    kept = [WrapUp(4, "c-1", "support/fixed", "router reset", T0),
            WrapUp(9, "c-2", "support/callback", "", T0 + 5)]
    outbox.save(path, kept)
    assert [p.name for p in tmp_path.iterdir()] == ["outbox-1001.json"]  # no temp left
    got = outbox.load(path)
    assert [(w.call_id, w.code, w.note, w.typed_at) for w in got] == [
        ("c-1", "support/fixed", "router reset", T0), ("c-2", "support/callback", "", T0 + 5)]
    outbox.save(path, [])
    assert outbox.load(path) == []


def test_no_outbox_file_is_an_empty_outbox_and_a_broken_one_is_named(tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "outbox-1001.json"
    assert outbox.load(path) == []
    path.write_text('{"wrapups": [{"code": "x"')
    with pytest.raises(outbox.OutboxError, match=r"outbox-1001\.json.*move it aside"):
        outbox.load(path)


def test_an_agent_id_cannot_lead_the_file_out_of_the_state_dir(tmp_path: Path) -> None:
    assert outbox.outbox_path("../../etc/x", tmp_path).parent == tmp_path


def test_wrap_ups_left_by_the_last_run_are_sent_first_once_signed_in() -> None:
    # the last run: typed offline, then the program quit
    before = on_call()
    ended(before)
    before.connection_lost(T0 + 61, "server gone")
    before.submit_wrapup("support/fixed", "kept", T0 + 62)
    kept = list(before.outbox)
    # this run
    s = AgentSession("1001")
    s.restore_outbox(kept, T0 + 100)
    assert s.link is Link.SIGNED_OUT and len(s.outbox) == 1
    s.sign_in(T0 + 100)
    out = s.online(view("wrap_up"), T0 + 101)
    sends = [a for a in out if isinstance(a, SendWrapUp)]
    assert [(a.wrapup.call_id, a.wrapup.code, a.wrapup.note) for a in sends] == [
        ("c-7", "support/fixed", "kept")]
    # the server had it already (it arrived just before the quit): dropped, no notice
    assert s.wrapup_refused(sends[0].wrapup.wrapup_id,
                            "agent 1001: call c-7 already has its code", T0 + 102) == []
    assert s.outbox == [] and s.refused == []


def test_a_restored_call_cannot_be_coded_twice_and_new_wrap_ups_get_new_ids() -> None:
    s = AgentSession("1001")
    s.restore_outbox([WrapUp(1, "c-7", "support/fixed", "", T0)], T0)
    s.acw_call_id = "c-7"
    with pytest.raises(InvalidStateError, match="already has its code"):
        s.submit_wrapup("support/other", "", T0 + 1)
    s.acw_call_id = "c-8"
    s.sign_in(T0 + 2)
    s.online(view("wrap_up"), T0 + 2)
    [send] = [a for a in s.submit_wrapup("support/fixed", "", T0 + 3)
              if isinstance(a, SendWrapUp)]
    assert send.wrapup.wrapup_id not in {w.wrapup_id for w in s.outbox[:-1]}


def test_the_outbox_is_restored_only_before_signing_in() -> None:
    s = AgentSession("1001")
    s.sign_in(T0)
    with pytest.raises(InvalidStateError, match="only at start"):
        s.restore_outbox([], T0)
