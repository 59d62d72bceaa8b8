"""The softphone's session core (softphone/session.py): every transition of the connection,
the ACD status mirror and the phone's call, the next state, and wrap-ups kept through a
lost connection. No I/O: the tests feed events with a fake clock and read the actions."""

from __future__ import annotations

from typing import Any

import pytest

from softphone.model import (
    AcdStatus,
    AnswerCall,
    CallState,
    Connect,
    HangUpCall,
    InvalidStateError,
    Link,
    Notice,
    ReconnectIn,
    RejectCall,
    Ring,
    SendDtmf,
    SendState,
    SendWrapUp,
    SetHold,
    SetMute,
    SignOut,
    Transfer,
)
from softphone.session import BACKOFF_MAX_S, AgentSession

T0 = 1_764_590_000.0
CALL = {"call_id": "c-7", "queue": "support", "state": "ringing", "caller": "1000",
        "caller_name": "", "wait_s": 12.0, "since": T0,
        "data": {"account": "42", "language": "en"}, "ivr_path": ["menu", "support"]}


def view(state: str = "logged_out", reason: str = "", call: Any = None) -> dict[str, Any]:
    return {"id": "1001", "name": "A", "state": state, "reason": reason, "since": T0,
            "queues": {"support": 5}, "call": call}


def state_event(state: str, old: str = "", reason: str = "", at: float = T0
                ) -> dict[str, Any]:
    return {"event": "state", "at": at, "state": state, "old": old, "reason": reason}


def kinds(actions: list[Any]) -> list[type]:
    return [type(a) for a in actions]


def online(state: str = "ready", **kw: Any) -> AgentSession:
    s = AgentSession("1001", **kw)
    assert s.sign_in(T0) == [Connect()]
    s.online(view(state), T0)
    return s


def on_call(**kw: Any) -> AgentSession:
    """Ready, rung, answered: the ACD says on_call, the phone talks."""
    s = online(**kw)
    s.server_event(state_event("reserved", "ready"), T0)
    s.server_event({"event": "offered", "at": T0, "call": CALL}, T0)
    assert s.incoming_call(True, T0) == [Ring(True)]
    assert s.answer(T0 + 1) == [AnswerCall()]
    assert s.call_answered(T0 + 1) == [Ring(False)]
    s.server_event({"event": "connected", "at": T0 + 1, "call": {**CALL, "state":
                                                                 "connected"}}, T0 + 1)
    s.server_event(state_event("on_call", "reserved"), T0 + 1)
    return s


def ended(s: AgentSession, now: float = T0 + 60) -> list[Any]:
    out = s.call_ended(now)
    out += s.server_event({"event": "ended", "at": now, "call_id": "c-7", "by": "caller",
                           "wrapup_s": 30.0}, now)
    out += s.server_event(state_event("wrap_up", "on_call"), now)
    return out


# ---- the connection -----------------------------------------------------------------


def test_sign_in_connects_and_online_takes_the_servers_state() -> None:
    s = AgentSession("1001")
    assert s.link is Link.SIGNED_OUT
    assert s.sign_in(T0) == [Connect()]
    assert s.link is Link.CONNECTING
    assert s.online(view("not_ready", "lunch"), T0) == []
    assert (s.link, s.status, s.reason) == (Link.ONLINE, AcdStatus.NOT_READY, "lunch")
    with pytest.raises(InvalidStateError, match="already signed in"):
        s.sign_in(T0)


def test_a_lost_connection_backs_off_doubling_up_to_the_cap_and_resets_when_online() -> None:
    s = online()
    delays = []
    for _ in range(9):
        out = s.connection_lost(T0, "connection refused")
        assert s.link is Link.OFFLINE
        assert kinds(out) == [Notice, ReconnectIn]
        delays.append(out[1].delay_s)
        assert s.connection_lost(T0, "again") == []  # already offline: one timer
        assert s.reconnect_due(T0) == [Connect()]
        assert s.link is Link.CONNECTING
    assert delays == [0.5, 1, 2, 4, 8, 16, BACKOFF_MAX_S, BACKOFF_MAX_S, BACKOFF_MAX_S]
    s.online(view("ready"), T0)
    out = s.connection_lost(T0, "reset")
    assert out[1] == ReconnectIn(0.5)


def test_a_refused_sign_in_stops_trying_and_says_why() -> None:
    s = AgentSession("1001")
    s.sign_in(T0)
    out = s.sign_in_refused(T0, "wrong agent id or password")
    assert s.link is Link.SIGNED_OUT
    assert [n.level for n in out if isinstance(n, Notice)] == ["error"]
    assert s.reconnect_due(T0) == []


def test_reconnect_resyncs_to_what_the_server_says_now() -> None:
    s = online("ready")
    s.connection_lost(T0, "down")
    s.reconnect_due(T0 + 1)
    s.online(view("not_ready", "no-answer"), T0 + 2)  # autopaused meanwhile
    assert (s.status, s.reason) == (AcdStatus.NOT_READY, "no-answer")


def test_sign_out_sends_it_and_leaves_nothing_to_reconnect() -> None:
    s = online()
    assert s.sign_out(T0) == [SignOut()]
    assert (s.link, s.status) == (Link.SIGNED_OUT, AcdStatus.LOGGED_OUT)
    assert s.connection_lost(T0, "closed") == []


def test_sign_out_during_a_call_becomes_the_next_state() -> None:
    s = on_call()
    assert s.sign_out(T0) == [SendState(AcdStatus.LOGGED_OUT)]
    assert s.link is Link.ONLINE and s.next_state == (AcdStatus.LOGGED_OUT, "")


# ---- the agent's state --------------------------------------------------------------


@pytest.mark.parametrize(("state", "reason", "sent"), [
    ("ready", "", SendState(AcdStatus.READY)),
    ("not_ready", "lunch", SendState(AcdStatus.NOT_READY, "lunch")),
    ("not-ready", "break", SendState(AcdStatus.NOT_READY, "break")),
    ("logged_out", "ignored", SendState(AcdStatus.LOGGED_OUT)),
])
def test_state_asked_for_while_idle_goes_to_the_server_at_once(
        state: str, reason: str, sent: SendState) -> None:
    s = online("not_ready")
    assert s.set_state(state, reason, T0) == [sent]


@pytest.mark.parametrize("bad", ["on_call", "reserved", "wrap_up", "dancing"])
def test_states_an_agent_cannot_ask_for_are_refused_with_the_reason(bad: str) -> None:
    s = online()
    with pytest.raises(InvalidStateError):
        s.set_state(bad, "", T0)


def test_the_server_pushes_every_acd_status_and_the_session_mirrors_it() -> None:
    s = online("logged_out")
    for state, reason in [("ready", ""), ("not_ready", "lunch"), ("ready", ""),
                          ("reserved", ""), ("on_call", ""), ("wrap_up", ""), ("ready", ""),
                          ("not_ready", "no-answer"), ("logged_out", "")]:
        s.server_event(state_event(state, reason=reason, at=T0 + 5), T0 + 5)
        assert (s.status.value, s.reason, s.status_since) == (state, reason, T0 + 5)


def test_a_state_asked_for_offline_is_kept_and_sent_on_reconnect() -> None:
    s = online("ready")
    s.connection_lost(T0, "down")
    assert kinds(s.go_not_ready("lunch", T0)) == [Notice]
    s.reconnect_due(T0 + 1)
    assert s.online(view("ready"), T0 + 1) == [SendState(AcdStatus.NOT_READY, "lunch")]
    assert s.wanted is None


def test_state_before_signing_in_is_refused() -> None:
    with pytest.raises(InvalidStateError, match="sign in"):
        AgentSession("1001").go_ready(T0)


# ---- next state ---------------------------------------------------------------------


def test_next_state_chosen_on_a_call_is_sent_for_the_server_to_keep_until_acw_ends() -> None:
    s = on_call()
    assert s.go_not_ready("lunch", T0 + 5) == [SendState(AcdStatus.NOT_READY, "lunch")]
    assert s.status is AcdStatus.ON_CALL  # the call goes on
    ended(s)
    # the server applies it when the wrap-up ends: nothing more to send
    assert s.server_event(state_event("not_ready", "wrap_up", "lunch"), T0 + 90) == []
    assert s.next_state is None


def test_next_state_chosen_while_ringing_waits_for_the_answer() -> None:
    s = online()
    s.server_event(state_event("reserved", "ready"), T0)
    s.incoming_call(True, T0)
    assert s.choose_next_state("not_ready", "meeting", T0) == []  # no cancel of the offer
    s.answer(T0)
    s.call_answered(T0)
    assert s.server_event(state_event("on_call", "reserved"), T0 + 1) == [
        SendState(AcdStatus.NOT_READY, "meeting")]


def test_next_state_chosen_in_acw_goes_with_the_wrap_up_code() -> None:
    s = on_call()
    ended(s)
    assert s.choose_next_state("not_ready", "break", T0 + 61) == []
    out = s.submit_wrapup("support/fixed", "", T0 + 62)
    assert kinds(out) == [SendWrapUp, SendState]
    assert out[1] == SendState(AcdStatus.NOT_READY, "break")


def test_next_state_is_sent_when_the_acw_timer_ends_first() -> None:
    s = on_call()
    ended(s)
    s.choose_next_state("not_ready", "training", T0 + 61)
    assert s.server_event(state_event("ready", "wrap_up"), T0 + 90) == [
        SendState(AcdStatus.NOT_READY, "training")]
    assert s.next_state is None


def test_ready_in_acw_ends_the_wrap_up_now() -> None:
    s = on_call()
    ended(s)
    assert s.go_ready(T0 + 61) == [SendState(AcdStatus.READY)]


def test_next_state_while_idle_is_just_the_state() -> None:
    s = online("ready")
    assert s.choose_next_state("not_ready", "lunch", T0) == [
        SendState(AcdStatus.NOT_READY, "lunch")]
    assert s.next_state is None


def test_next_state_sent_on_a_call_goes_again_after_a_reconnect() -> None:
    s = on_call()
    s.go_not_ready("lunch", T0 + 5)
    s.connection_lost(T0 + 6, "down")
    s.reconnect_due(T0 + 7)
    # a restarted server lost what it kept: still on the call, it gets it again
    out = s.online(view("on_call", call={**CALL, "state": "connected"}), T0 + 8)
    assert out == [SendState(AcdStatus.NOT_READY, "lunch")]


# ---- wrap-up ------------------------------------------------------------------------


def test_a_wrap_up_goes_to_the_server_and_leaves_the_outbox_when_delivered() -> None:
    s = on_call()
    ended(s)
    assert s.status is AcdStatus.WRAP_UP and s.acw_call_id == "c-7"
    [send] = s.submit_wrapup("support/fixed", "reset the router", T0 + 70)
    assert isinstance(send, SendWrapUp)
    assert (send.wrapup.call_id, send.wrapup.code, send.wrapup.note) == (
        "c-7", "support/fixed", "reset the router")
    assert s.outbox == [send.wrapup]
    s.wrapup_delivered(send.wrapup.wrapup_id, T0 + 71)
    assert s.outbox == [] and s.in_flight == set()


def test_a_wrap_up_typed_offline_is_kept_and_sent_on_reconnect_in_order() -> None:
    s = on_call()
    ended(s)
    s.connection_lost(T0 + 61, "server gone")
    assert kinds(s.submit_wrapup("support/fixed", "first", T0 + 62)) == [Notice]
    assert len(s.outbox) == 1 and s.in_flight == set()
    s.reconnect_due(T0 + 63)
    out = s.online(view("ready"), T0 + 64)
    assert [a.wrapup.note for a in out if isinstance(a, SendWrapUp)] == ["first"]


def test_a_wrap_up_lost_in_flight_is_sent_again_after_the_reconnect() -> None:
    s = on_call()
    ended(s)
    [send] = s.submit_wrapup("support/fixed", "", T0 + 62)
    s.connection_lost(T0 + 63, "reset by peer")  # no answer came
    s.reconnect_due(T0 + 64)
    assert s.online(view("ready"), T0 + 65) == [send]
    # the first one had arrived after all: the server says so, and it is done
    assert s.wrapup_refused(send.wrapup.wrapup_id, "agent 1001: call c-7 already has its "
                            "code", T0 + 66) == []
    assert s.outbox == [] and s.refused == []


def test_a_wrap_up_the_server_refuses_is_shown_and_may_be_typed_again() -> None:
    s = on_call()
    ended(s)
    [send] = s.submit_wrapup("support/nope", "", T0 + 62)
    out = s.wrapup_refused(send.wrapup.wrapup_id, "unknown wrap-up code 'support/nope'",
                           T0 + 63)
    assert kinds(out) == [Notice] and out[0].level == "error"
    assert [w.code for w, _ in s.refused] == ["support/nope"]
    assert kinds(s.submit_wrapup("support/fixed", "", T0 + 64)) == [SendWrapUp]


def test_a_call_is_coded_once_and_only_when_there_is_one() -> None:
    s = online()
    with pytest.raises(InvalidStateError, match="no call"):
        s.submit_wrapup("support/fixed", "", T0)
    s = on_call()
    ended(s)
    with pytest.raises(InvalidStateError, match="reason code"):
        s.submit_wrapup("  ", "", T0)
    s.submit_wrapup("support/fixed", "", T0 + 62)
    with pytest.raises(InvalidStateError, match="already has its code"):
        s.submit_wrapup("support/fixed", "", T0 + 63)


def test_signing_out_with_wrap_ups_not_delivered_is_refused() -> None:
    s = on_call()
    ended(s)
    s.connection_lost(T0 + 61, "down")
    s.submit_wrapup("support/fixed", "", T0 + 62)
    with pytest.raises(InvalidStateError, match="not yet with the server"):
        s.sign_out(T0 + 63)


# ---- the phone ----------------------------------------------------------------------


def test_an_incoming_call_from_anywhere_but_the_server_is_refused() -> None:
    s = online()
    assert s.incoming_call(False, T0) == [
        RejectCall(403, "not from the server this phone is signed in to")]
    assert s.call is CallState.IDLE


def test_no_calls_before_signing_in_and_none_while_on_one() -> None:
    assert kinds(AgentSession("1001").incoming_call(True, T0)) == [RejectCall]
    s = on_call()
    assert s.incoming_call(True, T0)[0].sip_status == 486


def test_the_call_rings_is_answered_held_resumed_muted_and_hung_up() -> None:
    s = on_call()
    assert s.call is CallState.TALKING
    assert s.set_mute(True, T0) == [SetMute(True)] and s.muted
    assert s.hold(T0) == [SetHold(True)]
    s.call_held(True, T0)
    assert s.call is CallState.HELD
    with pytest.raises(InvalidStateError, match="send digits"):
        s.send_dtmf("1", T0)
    assert s.resume(T0) == [SetHold(False)]
    s.call_held(False, T0)
    assert s.call is CallState.TALKING
    assert s.send_dtmf("12#*", T0) == [SendDtmf("12#*")]
    assert s.hang_up(T0) == [HangUpCall()]
    assert s.call_ended(T0) == []
    assert (s.call, s.muted) == (CallState.IDLE, False)


def test_hanging_up_a_ringing_call_declines_it_and_the_ring_stops_when_it_ends() -> None:
    s = online()
    s.incoming_call(True, T0)
    assert s.hang_up(T0) == [RejectCall(486, "declined by the agent")]
    assert s.call_ended(T0) == [Ring(False)]


@pytest.mark.parametrize(("command", "state"), [
    ("answer", CallState.IDLE), ("hang_up", CallState.IDLE), ("hold", CallState.IDLE),
    ("resume", CallState.TALKING), ("hold", CallState.HELD), ("answer", CallState.TALKING),
])
def test_call_commands_in_the_wrong_call_state_say_why(command: str, state: CallState
                                                       ) -> None:
    s = online()
    s.call = state
    with pytest.raises(InvalidStateError, match=f"while the phone is {state.value}"):
        getattr(s, command)(T0)


def test_auto_answer_after_the_chosen_seconds() -> None:
    s = online(auto_answer_s=3.0)
    s.incoming_call(True, T0)
    assert s.tick(T0 + 2.9) == []
    assert s.tick(T0 + 3.0) == [AnswerCall()]
    assert s.tick(T0 + 4.0) == []  # once


def test_auto_answer_is_chosen_by_the_agent_within_bounds() -> None:
    s = online()
    s.set_auto_answer(2.0, T0)
    s.incoming_call(True, T0)
    assert s.tick(T0 + 2.0) == [AnswerCall()]
    s.set_auto_answer(0, T0)
    assert s.auto_answer_s is None
    with pytest.raises(InvalidStateError, match="0 to 60 s"):
        s.set_auto_answer(90, T0)


@pytest.mark.parametrize("to", ["queue:billing", "agent:1002", "flow:survey", "tel:+4930123"])
def test_transfer_targets(to: str) -> None:
    assert on_call().transfer(to, T0) == [Transfer(to)]


@pytest.mark.parametrize("to", ["billing", "queue:", "tel:abc", "sip:x@y"])
def test_bad_transfer_targets_are_refused_with_the_forms_allowed(to: str) -> None:
    with pytest.raises(InvalidStateError, match="agent:ID, queue:NAME"):
        on_call().transfer(to, T0)


def test_bad_digits_are_refused() -> None:
    with pytest.raises(InvalidStateError, match="not DTMF"):
        on_call().send_dtmf("1x", T0)


def test_a_new_call_ringing_before_its_offer_event_does_not_show_the_last_calls_pop(
        ) -> None:
    s = on_call()
    ended(s)
    s.submit_wrapup("support/fixed", "", T0 + 61)
    s.server_event(state_event("ready", "wrap_up"), T0 + 62)
    s.incoming_call(True, T0 + 70, "<http://127.0.0.1:8080/api/v1/calls/c-8>")
    assert s.offer is None
    s.server_event({"event": "offered", "at": T0 + 70, "call": {**CALL, "call_id": "c-8"}},
                   T0 + 70)
    assert s.offer is not None and s.offer.call_id == "c-8"


def test_the_screen_pop_carries_the_callers_data() -> None:
    s = on_call()
    assert s.offer is not None
    assert (s.offer.caller, s.offer.queue, s.offer.wait_s, s.offer.data["account"],
            s.offer.ivr_path, s.offer.language) == ("1000", "support", 12.0, "42",
                                                    ("menu", "support"), "en")


def test_a_state_change_that_did_not_reach_the_server_goes_again_on_reconnect() -> None:
    s = online("not_ready")
    s.go_ready(T0)
    assert kinds(s.state_not_sent(AcdStatus.READY, "", T0, "timed out")) == [Notice,
                                                                             ReconnectIn]
    s.reconnect_due(T0 + 1)
    assert s.online(view("not_ready"), T0 + 1) == [SendState(AcdStatus.READY)]
