"""Queued callbacks, abandoned-call callbacks and own agents: the ACD core (``core.py``)
with the entries no caller waits on. Still a pure core: events and ``now`` in, actions out.

A callback takes the caller's place in line (``CallbackRequested``): the same priority,
enter time and arrival number, so it is served after every caller who came before it and
before every caller who came after. One callback per number per queue is open at a time; a
second request updates the first (which keeps the earlier of the two places). Offered like
a call (``OfferAgent`` with ``kind`` callback), the agent's answer starts the dialling
(``DialCustomer``); the customer's answer bridges them (``CallConnected``); not reached
(no answer, busy, voicemail) the agent is released, and the callback waits ``retry_s`` at
its place, ``retries`` times, then is closed with that outcome. Callbacks are only offered
inside the queue's calling hours (``callback.hours``). Every change is a queue-log row and a
``SaveCallback`` (the store's ``callbacks`` table), from which ``CallbackRestored`` puts
them back after a restart.

An abandoned caller with a number (``abandoned_callback: true``) becomes a callback of kind
``abandoned`` at the place they left, closed (``expired``) if not made within
``abandoned_callback_within_s`` or by the end of the day in the calling hours' time zone.

Own agent (``own_agent_s``): a caller whose number an agent of this queue last served is
offered to that agent alone for the first ``own_agent_s`` of the wait.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from zoneinfo import ZoneInfo

from ..hours import is_open
from . import core
from . import events as ev
from .config import AcdConfig, CallbackConfig
from .model import Agent, AgentState, EntryState, InvalidStateError, OfferState, Outcome, QueueEntry
from .queue_log import QueueEvent
from .state import AcdError

HOURS_RECHECK_S = 60.0  # outside calling hours, a callback is looked at again this often
NOT_REACHED = ("no_answer", "busy", "voicemail", "failed")
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


def callback_number(text: str) -> str:
    """The number to call back, without spaces, dots or dashes; AcdError if it is none."""
    number = re.sub(r"[\s.\-()]", "", text)
    if number.startswith("sip:") or "@" in number:
        number = number.removeprefix("sip:").split("@", 1)[0]
    if not _NUMBER.fullmatch(number):
        raise AcdError(f"{text!r} is not a number to call back: 3 to 20 digits, "
                       "optionally after a +")
    return number


def end_of_day(now: float, timezone: str) -> float:
    """The next local midnight after ``now`` in ``timezone``, as epoch seconds."""
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(),
                                   local.tzinfo)
    return midnight.timestamp()


class CallbackAcd(core.Acd):
    """The core's queues, agents and offers, plus callbacks and own agents (``Acd`` in
    ``full.py`` layers this over transfers and consults)."""

    def __init__(self, config: AcdConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.offer_callbacks = True  # False: no worker can place them (kept in line)
        self.open_callbacks: dict[tuple[str, str], str] = {}  # (queue, number) -> its id
        self.last_agent: dict[str, str] = {}  # caller number -> who last served it
        self._dial_offer: dict[str, str] = {}  # callback id -> the offer being dialled

    # ---- what others call -------------------------------------------------------------

    def callbacks(self, queue: str | None = None) -> list[QueueEntry]:
        """The open callbacks (of ``queue``), in the order they will be served."""
        out = [e for e in self.entries.values() if e.kind != "call"
               and (queue is None or e.queue == queue)]
        return sorted(out, key=lambda e: e.key)

    def remember_agent(self, number: str, agent_id: str) -> None:
        """``agent_id`` served ``number`` (the restart rebuilds this from the queue log)."""
        if number and agent_id:
            self.last_agent[_digits_or(number)] = agent_id

    # ---- a caller asks ----------------------------------------------------------------

    def _callback_config(self, queue: str) -> CallbackConfig:
        cfg = self.queues[queue].cfg
        if cfg.callback is not None:
            return cfg.callback
        return CallbackConfig()

    def _on_CallbackRequested(self, e: ev.CallbackRequested, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is None:
            raise AcdError(f"call {e.call_id} is not in a queue: no place to keep")
        if entry.kind != "call":
            raise AcdError(f"{e.call_id} is itself a callback")
        if entry.state not in (EntryState.WAITING, EntryState.OFFERED):
            raise InvalidStateError(f"call {e.call_id} is {entry.state.value}: only a "
                                    "waiting caller can ask for a callback")
        if self.queues[entry.queue].cfg.callback is None:
            raise AcdError(f"queue {entry.queue!r} takes no callbacks (no `callback:` in "
                           "the ACD file)")
        number = callback_number(e.number)
        existing = self.open_callbacks.get((entry.queue, number))
        callback_id = existing or f"cb-{entry.call_id}"
        position = self._leave(entry, now, "callback")
        self._end(entry, Outcome.CALLBACK, now, QueueEvent.EXITCALLBACK, position=position,
                  code=callback_id)
        data = dict(e.data)
        if existing is not None:
            cb = self.entries[existing]
            cb.data.update(data)
            cb.kind = "callback"  # an abandoned call's callback the caller now asked for
            cb.deadline = None
            if cb.state is EntryState.WAITING and entry.key < cb.key:
                self._remove(cb)  # keep the earlier of the two places
                cb.priority, cb.enter_at, cb.seq = entry.priority, entry.enter_at, entry.seq
                self._insert(cb)
            self._log(now, QueueEvent.CALLBACKUPDATE, call_id=cb.call_id, queue=cb.queue,
                      reason=entry.call_id)
        else:
            cb = self._new_callback(entry, "callback", number, data, now)
        self._save(cb, now)
        queue = self.queues[cb.queue]
        pos = queue.position(cb) if cb.state is EntryState.WAITING else 1
        self._out.append(ev.CallbackTaken(entry.call_id, cb.call_id, cb.queue, pos,
                                          queue.estimate_s(pos, self.agents),
                                          existing is not None))

    def _new_callback(self, entry: QueueEntry, kind: str, number: str,
                      data: dict[str, str], now: float) -> QueueEntry:
        """A callback entry at ``entry``'s place in line (it has left)."""
        cb = QueueEntry(f"cb-{entry.call_id}", entry.queue, entry.priority, entry.enter_at,
                        entry.seq, entry.skills, entry.caller, kind=kind, number=number,
                        data=data)
        self._enter(cb, now)
        self._log(now, QueueEvent.CALLBACKREQUEST, call_id=cb.call_id, queue=cb.queue,
                  position=cb.enter_position, priority=cb.priority, reason=kind,
                  note=entry.call_id)
        return cb

    def _enter(self, cb: QueueEntry, now: float) -> None:
        self.entries[cb.call_id] = cb
        self.open_callbacks[(cb.queue, cb.number)] = cb.call_id
        self.queues[cb.queue].size += 1
        cb.enter_position = self._insert(cb)
        if cb.deadline is not None:
            self._timer(cb.deadline, "callback_deadline", cb.call_id)
        if cb.not_before is not None:
            self._timer(cb.not_before, "callback_due", cb.call_id)

    def _on_CallbackRestored(self, e: ev.CallbackRestored, now: float) -> None:
        r = e.record
        if r.queue not in self.queues:
            raise AcdError(f"callback {r.callback_id}: no queue {r.queue!r} in the ACD file")
        if r.callback_id in self.entries:
            raise AcdError(f"callback {r.callback_id} is already in line")
        cb = QueueEntry(r.callback_id, r.queue, r.priority, r.enter_at, self._next(),
                        (), r.number, kind=r.kind, number=r.number, attempts=r.attempts,
                        not_before=r.not_before, deadline=r.deadline, data=dict(r.data))
        self._enter(cb, now)
        if r.state in ("dialing", "connected"):
            # the old controller's call to the customer is gone: that attempt is lost
            self._log(now, QueueEvent.CALLBACKFAIL, call_id=cb.call_id, queue=cb.queue,
                      position=r.attempts + 1, reason="restart")
            self._save(cb, now)

    def _on_CallbackCancelled(self, e: ev.CallbackCancelled, now: float) -> None:
        cb = self._callback(e.callback_id)
        if cb.state not in (EntryState.WAITING, EntryState.OFFERED):
            raise InvalidStateError(f"callback {cb.call_id} is {cb.state.value}: it can "
                                    "only be cancelled while it waits")
        self._close_callback(cb, now, Outcome.CALLBACK_FAILED, e.reason, position=self._leave(
            cb, now, "cancelled"))

    def _callback(self, callback_id: str) -> QueueEntry:
        cb = self.entries.get(callback_id)
        if cb is None or cb.kind == "call":
            raise AcdError(f"no open callback {callback_id!r}")
        return cb

    # ---- offers and the customer ------------------------------------------------------

    def _offer(self, entry: QueueEntry, agent: Agent, now: float) -> None:
        super()._offer(entry, agent, now)
        if entry.kind != "call":  # the agent is told it is a callback, and the number
            i = max(i for i, a in enumerate(self._out) if isinstance(a, ev.OfferAgent))
            offer = self._out[i]
            assert isinstance(offer, ev.OfferAgent)
            self._out[i] = replace(offer, kind=entry.kind, number=entry.number)

    def _on_OfferAnswered(self, e: ev.OfferAnswered, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        entry = self.entries.get(offer.call_id) if offer is not None else None
        if offer is None or entry is None or entry.kind == "call":
            super()._on_OfferAnswered(e, now)
            if entry is not None and entry.state is EntryState.CONNECTED and entry.caller:
                self.remember_agent(entry.caller, entry.agent_id or "")
            return
        entry, agent = self._close(offer, OfferState.ANSWERED)
        for other in list(entry.offers):
            self._cancel(self.offers[other], now, "answered-elsewhere")
        entry._set_state(EntryState.DIALING)
        entry.agent_id = agent.agent_id
        agent.misses = 0
        agent.call_id, agent.call_queue = entry.call_id, entry.queue
        self._move(agent, AgentState.ON_CALL, now, call_id=entry.call_id, queue=entry.queue)
        self._dial_offer[entry.call_id] = offer.offer_id
        attempt = entry.attempts + 1
        self._log(now, QueueEvent.CALLBACKDIAL, call_id=entry.call_id, queue=entry.queue,
                  agent_id=agent.agent_id, position=attempt, ring_s=now - offer.started_at)
        cfg = self._callback_config(entry.queue)
        self._out.append(ev.DialCustomer(offer.offer_id, entry.call_id, agent.agent_id,
                                         entry.queue, entry.number, cfg.no_answer_s, attempt))
        self._save(entry, now)

    def _on_OfferFailed(self, e: ev.OfferFailed, now: float) -> None:
        offer = self.offers.get(e.offer_id)
        entry = self.entries.get(offer.call_id) if offer is not None else None
        if offer is None or entry is None or entry.kind == "call" or e.reason != "error":
            super()._on_OfferFailed(e, now)
            return
        # no worker could ring the agent for it: nobody's miss; looked at again later
        _, agent = self._close(offer, OfferState.REJECTED)
        self._log(now, QueueEvent.RINGCANCELED, call_id=offer.call_id, queue=offer.queue,
                  agent_id=offer.agent_id, ring_s=now - offer.started_at, reason="no-leg")
        self._move(agent, AgentState.READY, now, call_id=offer.call_id, queue=offer.queue)
        if not entry.offers:
            entry._set_state(EntryState.WAITING)
            entry.not_before = now + HOURS_RECHECK_S
            self._timer(entry.not_before, "callback_due", entry.call_id)
            self._insert(entry)

    def _on_CustomerAnswered(self, e: ev.CustomerAnswered, now: float) -> None:
        cb = self._callback(e.callback_id)
        if cb.state is not EntryState.DIALING:
            raise InvalidStateError(f"callback {cb.call_id} is {cb.state.value}: no "
                                    "customer is being dialled")
        cb._set_state(EntryState.CONNECTED)
        cb.connected_at = now
        self.queues[cb.queue].size -= 1
        self._log(now, QueueEvent.CALLBACKCONNECT, call_id=cb.call_id, queue=cb.queue,
                  agent_id=cb.agent_id or "", wait_s=now - cb.enter_at,
                  position=cb.attempts + 1)
        self._out.append(ev.CallConnected(self._dial_offer.get(cb.call_id, ""), cb.call_id,
                                          cb.agent_id or "", cb.queue))
        self._save(cb, now)

    def _on_CustomerNotReached(self, e: ev.CustomerNotReached, now: float) -> None:
        cb = self._callback(e.callback_id)
        if e.outcome not in NOT_REACHED:
            raise AcdError(f"unknown callback outcome {e.outcome!r}; one of "
                           f"{', '.join(NOT_REACHED)}")
        if cb.state is not EntryState.DIALING:
            raise InvalidStateError(f"callback {cb.call_id} is {cb.state.value}: no "
                                    "customer is being dialled")
        self._not_reached(cb, now, e.outcome, counts=True)

    def _not_reached(self, cb: QueueEntry, now: float, outcome: str, counts: bool) -> None:
        """The customer was not reached: release the agent; retry later or close."""
        self._log(now, QueueEvent.CALLBACKFAIL, call_id=cb.call_id, queue=cb.queue,
                  agent_id=cb.agent_id or "", position=cb.attempts + 1, reason=outcome)
        agent = self.agents[cb.agent_id or ""]
        self._dial_offer.pop(cb.call_id, None)
        cb.agent_id = None
        self._move(agent, AgentState.WRAP_UP, now, call_id=cb.call_id, queue=cb.queue)
        self._end_wrapup(agent, now)  # nobody was talked to: no after-call work
        cfg = self._callback_config(cb.queue)
        cb.attempts += counts
        if cb.attempts > cfg.retries:
            self._close_callback(cb, now, Outcome.CALLBACK_FAILED, outcome)
            return
        cb._set_state(EntryState.WAITING)
        if counts:
            cb.not_before = now + cfg.retry_s
            self._timer(cb.not_before, "callback_due", cb.call_id)
        else:
            cb.tried.add(agent.agent_id)  # their hang-up: try someone else first
        self._insert(cb)
        self._save(cb, now)

    def _close_callback(self, cb: QueueEntry, now: float, outcome: Outcome, reason: str,
                        position: int | None = None) -> None:
        self.open_callbacks.pop((cb.queue, cb.number), None)
        self._dial_offer.pop(cb.call_id, None)
        if cb.state is EntryState.WAITING and position is None:
            position = self._remove(cb)
        self._end(cb, outcome, now, QueueEvent.CALLBACKCLOSED, reason=reason,
                  position=position, enter_position=cb.attempts)
        self._save(cb, now, state="closed", outcome=reason)

    # ---- hang-ups ----------------------------------------------------------------------

    def _on_AgentHungUp(self, e: ev.AgentHungUp, now: float) -> None:
        cb = self.entries.get(e.call_id)
        if cb is None or cb.kind == "call":
            super()._on_AgentHungUp(e, now)
            return
        if cb.state is EntryState.DIALING:
            self._not_reached(cb, now, "agent-gone", counts=False)
        elif cb.state is EntryState.CONNECTED:
            self._complete_callback(cb, now, QueueEvent.CALLBACKCOMPLETE,
                                    Outcome.COMPLETED_AGENT)

    def _on_CallerHungUp(self, e: ev.CallerHungUp, now: float) -> None:
        entry = self.entries.get(e.call_id)
        if entry is not None and entry.kind != "call":  # the customer's leg
            if entry.state is EntryState.DIALING:
                self._not_reached(entry, now, "failed", counts=True)
            elif entry.state is EntryState.CONNECTED:
                self._complete_callback(entry, now, QueueEvent.CALLBACKCOMPLETE,
                                        Outcome.COMPLETED_CALLER)
            return
        abandoning = entry is not None and entry.state in (EntryState.WAITING,
                                                           EntryState.OFFERED)
        super()._on_CallerHungUp(e, now)
        if entry is not None and abandoning:
            self._abandoned(entry, now)

    def _on_CallLost(self, e: ev.CallLost, now: float) -> None:
        cb = self.entries.get(e.call_id)
        if cb is None or cb.kind == "call":
            super()._on_CallLost(e, now)
            return
        if cb.state is EntryState.DIALING:
            self._not_reached(cb, now, "failed", counts=False)
        elif cb.state is EntryState.CONNECTED:
            self._complete_callback(cb, now, QueueEvent.CALLBACKCOMPLETE,
                                    Outcome.COMPLETED_CALLER)
        elif cb.state is EntryState.OFFERED:
            for offer_id in list(cb.offers):  # the worker ringing the agent died
                self._cancel(self.offers[offer_id], now, "caller-gone")
            self._requeue(cb, now)

    def _complete_callback(self, cb: QueueEntry, now: float, event: QueueEvent,
                           outcome: Outcome) -> None:
        self.open_callbacks.pop((cb.queue, cb.number), None)
        self._dial_offer.pop(cb.call_id, None)
        self.remember_agent(cb.number, cb.agent_id or "")
        self._complete(cb, now, event, outcome)
        self._save(cb, now, state="closed", outcome=outcome.value)

    def _abandoned(self, entry: QueueEntry, now: float) -> None:
        """An abandoned caller's number goes on the queue's callback list."""
        cfg = self.queues[entry.queue].cfg
        if not cfg.abandoned_callback or not entry.caller:
            return
        try:
            number = callback_number(entry.caller)
        except AcdError:
            return  # anonymous or not a number: nobody to call back
        existing = self.open_callbacks.get((entry.queue, number))
        if existing is not None:
            self._log(now, QueueEvent.CALLBACKUPDATE, call_id=existing, queue=entry.queue,
                      reason=entry.call_id)
            return
        tz = self._callback_config(entry.queue).timezone
        deadline = min(now + cfg.abandoned_callback_within_s, end_of_day(now, tz))
        cb = QueueEntry(f"cb-{entry.call_id}", entry.queue, entry.priority, entry.enter_at,
                        entry.seq, entry.skills, entry.caller, kind="abandoned",
                        number=number, deadline=deadline)
        self._enter(cb, now)
        self._log(now, QueueEvent.CALLBACKREQUEST, call_id=cb.call_id, queue=cb.queue,
                  position=cb.enter_position, priority=cb.priority, reason="abandoned",
                  note=entry.call_id)
        self._save(cb, now)

    # ---- own agent ---------------------------------------------------------------------

    def _on_CallQueued(self, e: ev.CallQueued, now: float) -> None:
        super()._on_CallQueued(e, now)
        entry = self.entries.get(e.call_id)
        cfg = self.queues[e.queue].cfg
        if entry is None or not cfg.own_agent_s or not e.caller:
            return
        own = self.last_agent.get(_digits_or(e.caller))
        if own and own in self.queues[e.queue].members:
            entry.only_agent, entry.only_until = own, now + cfg.own_agent_s
            self._timer(entry.only_until, "callback_due", e.call_id)

    def _check_empty(self, agent: Agent, now: float) -> None:
        """The last agent signed out: callers overflow (when_no_agents), callbacks stay."""
        kept = [e for e in self.callbacks() if e.state is EntryState.WAITING
                and e.queue in agent.queues]
        for cb in kept:
            self._remove(cb)
        super()._check_empty(agent, now)
        for cb in kept:
            self._insert(cb)

    # ---- timers and routing ------------------------------------------------------------

    def _timer_callback_due(self, key: str, when: float, now: float) -> None:
        self._dirty = True  # a retry's wait or an own agent's time is over

    def _timer_callback_deadline(self, key: str, when: float, now: float) -> None:
        cb = self.entries.get(key)
        if cb is not None and cb.deadline == when and cb.state is EntryState.WAITING:
            self._close_callback(cb, now, Outcome.EXPIRED, "expired")

    def _dispatch(self, now: float) -> None:
        if self._dirty:
            self._gate_hours(now)
        super()._dispatch(now)

    def _gate_hours(self, now: float) -> None:
        """Callbacks outside their queue's calling hours are not offered; looked at
        again every HOURS_RECHECK_S."""
        at: dt.datetime | None = None
        for cb_id in self.open_callbacks.values():
            cb = self.entries[cb_id]
            if cb.state is not EntryState.WAITING:
                continue
            if cb.not_before is not None and now < cb.not_before:
                continue
            cfg = self._callback_config(cb.queue)
            if not self.offer_callbacks:
                cb.not_before = now + HOURS_RECHECK_S
                self._timer(cb.not_before, "callback_due", cb.call_id)
                continue
            if not cfg.hours:
                cb.not_before = None
                continue
            at = at or dt.datetime.fromtimestamp(now, dt.UTC)
            if is_open(cfg.hours, cfg.timezone, cfg.holidays, at):
                cb.not_before = None
            else:
                cb.not_before = now + HOURS_RECHECK_S
                self._timer(cb.not_before, "callback_due", cb.call_id)

    # ---- the store ---------------------------------------------------------------------

    def _save(self, cb: QueueEntry, now: float, state: str | None = None,
              outcome: str = "") -> None:
        self._out.append(ev.SaveCallback(ev.CallbackRecord(
            cb.call_id, cb.queue, cb.number, cb.kind, cb.call_id.removeprefix("cb-"),
            cb.priority, cb.enter_at, state or cb.state.value, cb.attempts, cb.not_before,
            cb.deadline, outcome, tuple(sorted(cb.data.items())), now)))


def _digits_or(caller: str) -> str:
    try:
        return callback_number(caller)
    except AcdError:
        return caller
