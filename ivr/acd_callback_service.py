"""The ACD service's part for queued callbacks (``AcdService`` inherits it): a waiting
caller's request in, the core's callback actions out.

Three doors, set by the controller (``ivr/controller_acd.py``): ``save_callback`` (write a
:class:`~ivr.acd.events.CallbackRecord` to the store), ``place_callback`` (a worker with a
free slot rings the agent for a callback offer: returns False when none can) and
``dial_customer`` (that worker dials the customer). Until a controller gives
``place_callback``, callbacks are kept in line and never offered (``offer_callbacks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import callback_messages as cm
from . import messages as m
from .acd import AcdError, InvalidStateError
from .acd import events as ev
from .logs import log_event

log = logging.getLogger("ivr.acd_service")

CALLBACK_MESSAGES = (cm.CallbackRequest,)
# what the worker placing a callback reports (the callback's id as call id)
_FROM_CALLBACK_WORKER = (m.OfferRinging, m.OfferAnswered, m.OfferFailed, m.AgentGone,
                         m.CallerGone, cm.CustomerAnswered, cm.CustomerNotReached)
CALLBACK_ACTIONS = (ev.SaveCallback, ev.CallbackTaken, ev.DialCustomer)


def _no_save(record: ev.CallbackRecord) -> None:
    log.debug("callback %s not saved: no store", record.callback_id)


class CallbackDoors:
    acd: Any
    calls: dict[str, Any]
    _send: Callable[[str, m.Message], bool]
    _agent_event: Callable[[str, dict[str, Any]], None]
    _clock: Callable[[], float]
    last_call: dict[str, Any]
    save_callback: Callable[[ev.CallbackRecord], None] = staticmethod(_no_save)
    place_callback: Callable[[ev.OfferAgent], bool] | None = None
    dial_customer: Callable[[ev.DialCustomer], bool] | None = None

    def _handle(self, event: ev.Event) -> None: ...  # AcdService's

    def _callback_message(self, msg: m.Message) -> None:
        if isinstance(msg, cm.CallbackRequest):
            info = self.calls.get(msg.call_id)
            data = {**(info.data if info is not None else {}), **msg.data}  # Join's too
            try:
                self._handle(ev.CallbackRequested(msg.call_id, msg.number,
                                                  tuple(sorted(data.items()))))
            except (AcdError, InvalidStateError) as exc:
                log_event("acd.callback_refused", call_id=msg.call_id, why=str(exc))
                self._send(msg.call_id, cm.CallbackRefused(msg.call_id, str(exc)))

    def is_callback(self, call_id: str) -> bool:
        entry = self.acd.entries.get(call_id)
        return entry is not None and entry.kind != "call"

    def _callback_worker_message(self, msg: m.Message) -> None:
        """The worker placing a callback reports on its legs."""
        event: ev.Event
        if isinstance(msg, m.OfferRinging):
            return
        if isinstance(msg, m.OfferAnswered):
            event = ev.OfferAnswered(msg.offer_id)
        elif isinstance(msg, m.OfferFailed):
            event = ev.OfferFailed(msg.offer_id, msg.reason if msg.reason in (
                "no_answer", "error") else "rejected")
        elif isinstance(msg, m.AgentGone):
            self._callback_ended_by(msg.call_id, "agent")
            event = ev.AgentHungUp(msg.call_id)
        elif isinstance(msg, m.CallerGone):
            self._callback_ended_by(msg.call_id, "caller")  # the customer
            event = ev.CallerHungUp(msg.call_id)
        elif isinstance(msg, cm.CustomerAnswered):
            event = ev.CustomerAnswered(msg.call_id)
        elif isinstance(msg, cm.CustomerNotReached):
            self._callback_ended_by(msg.call_id, "not_reached", msg.outcome)
            event = ev.CustomerNotReached(msg.call_id, msg.outcome)
        else:
            return
        log_event("acd.callback_" + msg.TYPE.removeprefix("acd."), callback_id=msg.call_id)
        try:
            self._handle(event)
        except (AcdError, InvalidStateError) as exc:  # a late or crossed report
            log.warning("callback %s: %s not taken: %s", msg.call_id, msg.TYPE, exc)

    def callbacks_lost(self, call_ids: list[str]) -> None:
        """The worker placing these callbacks died: agents freed, callbacks back in line."""
        for call_id in call_ids:
            if self.is_callback(call_id):
                self._handle(ev.CallLost(call_id))

    def _callback_action(self, action: ev.Action) -> None:
        if isinstance(action, ev.SaveCallback):
            self.save_callback(action.record)
        elif isinstance(action, ev.CallbackTaken):
            log_event("acd.callback_taken", call_id=action.call_id,
                      callback_id=action.callback_id, queue=action.queue,
                      position=action.position, updated=action.updated)
            self._send(action.call_id, cm.CallbackTaken(
                action.call_id, action.callback_id, action.queue, action.position,
                int(round(action.estimated_wait_s)), action.updated))
        elif isinstance(action, ev.DialCustomer):
            self._callback_taken_by_agent(action)
            dial = self.dial_customer
            if dial is None or not dial(action):
                self._handle(ev.CustomerNotReached(action.callback_id, "failed"))

    # the agent's screen: offered (below), connected when the customer answers, ended

    def _callback_taken_by_agent(self, action: ev.DialCustomer) -> None:
        """The agent took the callback: it is their call (``last_call``) from now on, so
        that its ``ended`` names it, whether the customer is reached or not."""
        from .acd_service import CallInfo  # that module imports this one

        entry = self.acd.entries.get(action.callback_id)
        self.last_call[action.agent_id] = CallInfo(
            action.callback_id, action.queue, action.number,
            dict(entry.data) if entry is not None else {},
            entry.enter_at if entry is not None else self._clock(), agent_id=action.agent_id)

    def _callback_info(self, callback_id: str, agent_id: str = "") -> Any:
        for who, info in self.last_call.items():
            if info.call_id == callback_id and (not agent_id or who == agent_id):
                return info
        return None

    def _callback_ended_by(self, callback_id: str, by: str, outcome: str = "") -> None:
        info = self._callback_info(callback_id)
        if info is not None and not info.ended_by:
            info.ended_by = by
            info.outcome = outcome

    def _callback_connected(self, action: ev.CallConnected) -> None:
        """The customer answered and the legs are bridged: the agent is told, as for a
        queued call's connect."""
        info = self._callback_info(action.call_id, action.agent_id)
        if info is None:
            return
        info.connected_at = self._clock()
        entry = self.acd.entries.get(action.call_id)
        self._agent_event(action.agent_id, {
            "event": "connected", "at": info.connected_at, "call": {
                **self.call_view(info, "connected"),
                "kind": entry.kind if entry is not None else "callback"}})

    def call_view(self, info: Any, state: str | None = None) -> dict[str, Any]:
        raise NotImplementedError  # AcdService's

    def _callback_offer(self, action: ev.OfferAgent) -> bool:
        """Ring the agent for a callback (no caller's worker holds it)."""
        place = self.place_callback
        if place is None or not place(action):
            return False
        entry = self.acd.entries.get(action.call_id)
        self._agent_event(action.agent_id, {
            "event": "offered", "at": self._clock(), "call": {
                "call_id": action.call_id, "queue": action.queue, "state": "ringing",
                "kind": action.kind, "caller": action.number, "caller_name": "",
                "wait_s": round(action.wait_s, 1), "since": self._clock() - action.wait_s,
                "data": dict(entry.data) if entry is not None else {}}})
        return True

    def restore_callbacks(self, records: list[ev.CallbackRecord]) -> int:
        """After a restart: the store's open callbacks back in line, in their order; a
        record the ACD file no longer allows (its queue gone) is left out, logged."""
        restored = 0
        for record in records:
            try:
                self._handle(ev.CallbackRestored(record))
                restored += 1
            except AcdError as exc:
                log.warning("callback %s not restored: %s", record.callback_id, exc)
        return restored
