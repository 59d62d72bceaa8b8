"""The queue log: one append-only row per thing that happened, named as call-center
engineers know them (Asterisk's queue_log names where there is one). Every queue and agent
figure is computed from these rows (``metrics.py``), never kept by hand.

Call rows (``call_id`` and ``queue`` set)::

    ENTERQUEUE      the caller joined (position, priority)
    RING            an agent's phone is rung (agent)
    RINGNOANSWER    it rang ring_timeout_s, or the phone refused (agent, ring_s, reason)
    RINGCANCELED    the ring was stopped: answered elsewhere, caller gone, agent's state
    CONNECT         an agent answered (agent, wait_s, ring_s)
    HOLD / UNHOLD   the agent put the caller on hold / took them back (hold_s on UNHOLD)
    COMPLETECALLER  final: answered, the caller hung up (wait_s, talk_s)
    COMPLETEAGENT   final: answered, the agent hung up (wait_s, talk_s)
    ABANDON         final: the caller hung up while waiting (wait_s, position, enter_position)
    EXITWITHTIMEOUT final: max_wait_s reached, sent to overflow (wait_s, position)
    EXITWITHKEY     final: the caller pressed a key to leave (code = the key)
    EXITEMPTY       final: the last agent signed out while the caller waited (when_no_agents)
    JOINEMPTY       final: nobody signed in when the caller came (when_no_agents; no ENTERQUEUE)
    FULL            final: max_size reached when the caller came (no ENTERQUEUE)
    EXITFAILURE     final: the stack lost the call before an agent answered (its worker
                    died, or the controller restarted): never counted as an abandon
    BLINDTRANSFER   the call's agent sent the caller on and left (agent, reason = the
                    target as asked, code = the agent rung when the target is an agent,
                    wait_s, talk_s = that agent's talk)
    ATTENDEDTRANSFER the consulted agent took the caller over after a consult (agent = the
                    first agent, code = the consulted agent, reason = the target, talk_s =
                    the first agent's talk, hold_s = the consult's length)
    CONSULT         the call's agent held the caller to consult (agent, code = the agent
                    rung, reason = the target)
    CONSULTEND      a consult ended without a transfer (agent, code, reason: cancelled,
                    no-answer, rejected, consult-gone)
    CONFERENCE      caller, agent and the consulted agent (code) in a three-way call
    EXITTRANSFER    final: the call left this queue by a transfer (reason: queue:NAME,
                    flow:NODE or tel:NUMBER); the agent's talk is on the transfer row
    A transfer to another queue logs ENTERQUEUE there with code ``transfer``, note = the
    queue it came from and wait_s = the time since the caller first entered a queue; the
    CONNECT row's wait_s (service level, ASA) counts from the transfer. A CONNECT row with
    reason ``transfer`` is a transferred call answered again in the same queue: not a new
    answer. COMPLETECALLER/COMPLETEAGENT's talk_s is the last agent's talk only.

Callback rows (queued callbacks and abandoned-call callbacks; ``call_id`` is the callback's
id, ``cb-<call>``, except EXITCALLBACK, which ends the caller's own call in the queue)::

    EXITCALLBACK    final: the caller asked to be called back and left (wait_s; code = the
                    callback's id)
    CALLBACKREQUEST a callback joined the line at the caller's place (reason = the kind,
                    callback or abandoned; position, priority)
    CALLBACKUPDATE  a second request for the same number and queue updated the first
    CALLBACKDIAL    the agent answered the offer; the customer is dialled (agent, position =
                    the attempt, 1 for the first)
    CALLBACKCONNECT the customer answered (agent, wait_s since the callback's place in line)
    CALLBACKFAIL    the customer was not reached (reason: no_answer, busy, voicemail,
                    failed, agent-gone; position = the attempt)
    CALLBACKCOMPLETE final: the callback was answered and has ended (talk_s; reason = who
                    hung up: agent or customer)
    CALLBACKCLOSED  final: closed unreached (reason: the last attempt's outcome, or expired)

Storm-mode rows (``queue`` set; ``ivr/emergency.py``)::

    EMERGENCYON      an emergency message was switched on (reason = the prompt, code = the
                     outage key, note = until when)
    EMERGENCYOFF     switched off by ops (reason = the prompt)
    EMERGENCYEXPIRED its expiry came (reason = the prompt)

Agent rows (``agent_id``, ``old_state``, ``new_state``; ``call_id``/``queue`` when a call is
the cause)::

    AGENTLOGIN      logged_out -> ready/not_ready
    AGENTLOGOFF     -> logged_out
    PAUSE           -> not_ready (reason, e.g. lunch, no-answer)
    UNPAUSE         not_ready -> ready
    AGENTSTATE      any other change (ready -> reserved -> on_call -> wrap_up -> ready)
    WRAPUP          a disposition code for the agent's last call (code, note)
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class QueueEvent(enum.Enum):
    __hash__ = object.__hash__  # identity: Enum's own hash is slow on hot paths
    ENTERQUEUE = "ENTERQUEUE"
    RING = "RING"
    RINGNOANSWER = "RINGNOANSWER"
    RINGCANCELED = "RINGCANCELED"
    CONNECT = "CONNECT"
    HOLD = "HOLD"
    UNHOLD = "UNHOLD"
    COMPLETECALLER = "COMPLETECALLER"
    COMPLETEAGENT = "COMPLETEAGENT"
    ABANDON = "ABANDON"
    EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
    EXITWITHKEY = "EXITWITHKEY"
    EXITEMPTY = "EXITEMPTY"
    JOINEMPTY = "JOINEMPTY"
    FULL = "FULL"
    EXITFAILURE = "EXITFAILURE"
    AGENTLOGIN = "AGENTLOGIN"
    AGENTLOGOFF = "AGENTLOGOFF"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"
    AGENTSTATE = "AGENTSTATE"
    WRAPUP = "WRAPUP"
    BLINDTRANSFER = "BLINDTRANSFER"
    ATTENDEDTRANSFER = "ATTENDEDTRANSFER"
    CONSULT = "CONSULT"
    CONSULTEND = "CONSULTEND"
    CONFERENCE = "CONFERENCE"
    EXITTRANSFER = "EXITTRANSFER"
    EXITCALLBACK = "EXITCALLBACK"
    CALLBACKREQUEST = "CALLBACKREQUEST"
    CALLBACKUPDATE = "CALLBACKUPDATE"
    CALLBACKDIAL = "CALLBACKDIAL"
    CALLBACKCONNECT = "CALLBACKCONNECT"
    CALLBACKFAIL = "CALLBACKFAIL"
    CALLBACKCOMPLETE = "CALLBACKCOMPLETE"
    CALLBACKCLOSED = "CALLBACKCLOSED"
    EMERGENCYON = "EMERGENCYON"
    EMERGENCYOFF = "EMERGENCYOFF"
    EMERGENCYEXPIRED = "EMERGENCYEXPIRED"


#: The events that end a caller's time in a queue; each call has exactly one.
FINAL_EVENTS = frozenset({
    QueueEvent.COMPLETECALLER, QueueEvent.COMPLETEAGENT, QueueEvent.ABANDON,
    QueueEvent.EXITWITHTIMEOUT, QueueEvent.EXITWITHKEY, QueueEvent.EXITEMPTY,
    QueueEvent.JOINEMPTY, QueueEvent.FULL, QueueEvent.EXITFAILURE, QueueEvent.EXITTRANSFER,
    QueueEvent.EXITCALLBACK,
    QueueEvent.CALLBACKCOMPLETE, QueueEvent.CALLBACKCLOSED,
})

#: The agent-state rows (each carries old_state and new_state).
AGENT_STATE_EVENTS = frozenset({
    QueueEvent.AGENTLOGIN, QueueEvent.AGENTLOGOFF, QueueEvent.PAUSE, QueueEvent.UNPAUSE,
    QueueEvent.AGENTSTATE,
})


class QueueLogRow(NamedTuple):
    """One queue-log row. Times are seconds (``at`` since the epoch, the rest durations).

    An immutable row, as the store's table will hold it (a tuple binds straight to an
    INSERT); a NamedTuple rather than a frozen dataclass because the core makes several per
    routing decision and a tuple is built five times faster."""

    at: float
    event: QueueEvent
    call_id: str = ""
    queue: str = ""
    agent_id: str = ""
    wait_s: float | None = None
    talk_s: float | None = None
    ring_s: float | None = None
    hold_s: float | None = None
    position: int | None = None
    enter_position: int | None = None
    priority: int | None = None
    reason: str = ""
    code: str = ""
    note: str = ""
    old_state: str = ""
    new_state: str = ""


def agent_state_event(old: str, new: str) -> QueueEvent:
    """The row name of an agent's change from ``old`` to ``new`` (AgentState values)."""
    if old == "logged_out":
        return QueueEvent.AGENTLOGIN
    if new == "logged_out":
        return QueueEvent.AGENTLOGOFF
    if new == "not_ready":
        return QueueEvent.PAUSE
    if old == "not_ready" and new == "ready":
        return QueueEvent.UNPAUSE
    return QueueEvent.AGENTSTATE
