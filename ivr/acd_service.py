"""The ACD in the controller: feeds the pure core (``ivr/acd``) what workers and agents
report, keeps its one timer, and carries its actions out.

Everything the core decides leaves through three doors given at construction: ``send``
(a typed message to the worker holding a call, ``ivr/messages.py``), ``log_rows`` (queue-log
rows for the store) and the desk's event hub (``ivr/agent_desk.py``: what agents' screens
are told). Times given to the core are wall-clock seconds (``clock``), as queue-log rows
keep them; its timer is armed on the running loop for the core's ``next_timer``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import acd_transfers
from . import messages as m
from . import supervision_messages as sm
from . import transfer_messages as tm
from .acd import Acd, AcdConfig, AcdError, EntryState, QueueLogRow
from .acd import events as ev
from .acd_callback_service import CALLBACK_ACTIONS, CALLBACK_MESSAGES, CallbackDoors
from .call_supervision import CallSupervision
from .logs import log_event

log = logging.getLogger("ivr.acd_service")


@dataclass
class CallInfo:
    """What the controller knows of a call in the ACD, for the agent's screen."""

    call_id: str
    queue: str
    caller: str
    data: dict[str, str]
    joined_at: float
    agent_id: str = ""
    offer_ids: set[str] = field(default_factory=set)
    connected_at: float | None = None
    held: bool = False
    ended_by: str = ""
    outcome: str = ""  # a callback's customer not reached: no_answer, busy, voicemail ...


class AcdService(CallbackDoors):
    def __init__(self, config: AcdConfig, *, send: Callable[[str, m.Message], bool],
                 log_rows: Callable[[list[QueueLogRow]], None],
                 agent_uri: Callable[[str], str],
                 on_agent_event: Callable[[str, dict[str, Any]], None] = lambda a, e: None,
                 clock: Callable[[], float] = time.time, seed: int = 0) -> None:
        self.acd = Acd(config, seed=seed)
        self._send = send
        self._log_rows = log_rows
        self._agent_uri = agent_uri
        self._agent_event = on_agent_event
        self._clock = clock
        self.calls: dict[str, CallInfo] = {}
        self.last_call: dict[str, CallInfo] = {}  # agent id -> their last call (wrap-up)
        self.rows_today: list[QueueLogRow] = []
        self._timer: asyncio.TimerHandle | None = None
        self._offer_sent: dict[str, float] = {}  # offer id -> monotonic time sent
        self.offer_latency_ms: list[float] = []  # agent free -> worker says the phone rings
        self.supervision = CallSupervision(self)  # listen / whisper / barge

    # ---- inputs ---------------------------------------------------------------------

    def on_message(self, msg: m.Message) -> None:
        """A worker's message about one of its calls."""
        call_id = msg.call_id
        info = self.calls.get(call_id)
        if isinstance(msg, m.Join):
            self._join(msg)
            return
        if isinstance(msg, CALLBACK_MESSAGES):
            self._callback_message(msg)
            return
        if info is None and self.is_callback(call_id):
            self._callback_worker_message(msg)
            return
        if info is None:
            log.debug("ACD message %s for call %s not in the ACD", msg.TYPE, call_id)
            if isinstance(msg, m.OfferAnswered):  # a leg answered for a call long gone
                self._send(call_id, m.CancelOffer(call_id, msg.offer_id, "caller-gone"))
            return
        event: ev.Event
        if isinstance(msg, m.OfferRinging):
            sent = self._offer_sent.pop(msg.offer_id, None)
            if sent is not None:
                self.offer_latency_ms.append((time.monotonic() - sent) * 1000)
                del self.offer_latency_ms[:-10000]
            return
        if isinstance(msg, m.OfferAnswered):
            event = ev.OfferAnswered(msg.offer_id)
        elif isinstance(msg, m.OfferFailed):
            self._offer_sent.pop(msg.offer_id, None)
            event = ev.OfferFailed(msg.offer_id, msg.reason if msg.reason in (
                "no_answer", "error") else "rejected")
        elif isinstance(msg, m.CallerGone):
            info.ended_by = info.ended_by or "caller"
            event = ev.CallerHungUp(call_id)
        elif isinstance(msg, m.AgentGone):
            info.ended_by = info.ended_by or "agent"
            event = ev.AgentHungUp(call_id)
        elif isinstance(msg, m.LeftWithKey):
            event = ev.CallerLeftWithKey(call_id, msg.key)
        elif isinstance(msg, m.Held):
            info.held = True
            event = ev.CallHeld(call_id)
            self._tell_agent(info, "held", call_id=call_id)
        elif isinstance(msg, m.Resumed):
            info.held = False
            event = ev.CallResumed(call_id)
            self._tell_agent(info, "resumed", call_id=call_id)
        elif isinstance(msg, tm.TransferAsked | tm.AgentLeft):
            acd_transfers.on_message(self, msg)
            return
        elif isinstance(msg, sm.SupervisorGone):
            self.supervision.on_message(msg)
            return
        else:
            log.warning("the controller does not take %s from a worker", msg.TYPE)
            return
        self._handle(event)

    def calls_lost(self, call_ids: Iterable[str], by: str = "system") -> None:
        """The worker holding these calls died: they are gone whatever their state."""
        for call_id in call_ids:
            info = self.calls.get(call_id)
            if info is not None:
                info.ended_by = info.ended_by or by
                self._handle(ev.CallerHungUp(call_id) if by == "caller"
                             else ev.CallLost(call_id))

    def request_state(self, agent_id: str, state: str, reason: str = "") -> None:
        """Raises AcdError (unknown agent or reason, bad state name): nothing changed."""
        self._handle(ev.AgentStateRequested(agent_id, state, reason))

    def wrapup(self, agent_id: str, code: str, note: str = "") -> None:
        self._handle(ev.WrapUpCoded(agent_id, code, note))

    def reconfigure(self, config: AcdConfig) -> None:
        """Raises AcdError when the new file cannot be taken (nothing changed)."""
        self._carry_out(self.acd.reconfigure(config, self._clock()))
        self._arm()

    # ---- the core -------------------------------------------------------------------

    def _join(self, msg: m.Join) -> None:
        now = self._clock()
        if msg.call_id in self.calls:
            log.warning("call %s joined the ACD twice; the second is refused", msg.call_id)
            self._send(msg.call_id, m.Exit(msg.call_id, msg.queue, "refused"))
            return
        info = CallInfo(msg.call_id, msg.queue, msg.caller, dict(msg.data), now)
        self.calls[msg.call_id] = info
        try:
            actions = self.acd.handle(ev.CallQueued(msg.call_id, msg.queue, msg.priority,
                                                    tuple(msg.skills), msg.caller), now)
        except AcdError as exc:
            del self.calls[msg.call_id]
            log_event("acd.join_refused", call_id=msg.call_id, queue=msg.queue, why=str(exc))
            self._send(msg.call_id, m.Exit(msg.call_id, msg.queue, "refused"))
            return
        entry = self.acd.entries.get(msg.call_id)
        if entry is not None and entry.state is EntryState.WAITING:
            position = self.acd.position(entry)
            estimate = self.acd.queues[msg.queue].estimate_s(position, self.acd.agents)
            self._send(msg.call_id, m.Queued(msg.call_id, msg.queue, position,
                                             int(round(estimate))))
        elif entry is not None:  # offered at once: it is in the ACD, ringing
            self._send(msg.call_id, m.Queued(msg.call_id, msg.queue, 0, 0))
        self._carry_out(actions)
        self._arm()

    def _handle(self, event: ev.Event) -> None:
        self._carry_out(self.acd.handle(event, self._clock()))
        self._arm()

    def _tick(self) -> None:
        self._timer = None
        try:
            self._carry_out(self.acd.tick(self._clock()))
        finally:
            self._arm()

    def _arm(self) -> None:
        when = self.acd.next_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven by a test without a loop: it calls tick itself
        self._timer = loop.call_later(max(0.0, when - self._clock()), self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- actions --------------------------------------------------------------------

    def _carry_out(self, actions: list[ev.Action]) -> None:
        rows: list[QueueLogRow] = []
        for action in actions:
            if isinstance(action, ev.LogQueueEvent):
                rows.append(action.row)
            elif isinstance(action, ev.OfferAgent):
                self._offer(action)
            elif isinstance(action, ev.CancelOffer):
                self._offer_sent.pop(action.offer_id, None)
                self._send(action.call_id, m.CancelOffer(action.call_id, action.offer_id,
                                                         action.reason))
            elif isinstance(action, ev.CallConnected):
                self._connected(action)
            elif isinstance(action, ev.RequeueCall):
                self._send(action.call_id, m.Requeued(action.call_id, action.queue,
                                                      action.position))
            elif isinstance(action, ev.Overflow):
                self.calls.pop(action.call_id, None)
                self._send(action.call_id, m.Exit(action.call_id, action.queue,
                                                  action.reason, action.target or ""))
            elif isinstance(action, ev.AnnouncePosition):
                self._send(action.call_id, m.Announce(
                    action.call_id, action.queue, action.position,
                    int(round(action.estimated_wait_s))))
            elif isinstance(action, ev.AgentStateChanged):
                self._state_changed(action)
            elif isinstance(action, acd_transfers.TRANSFER_ACTIONS):
                acd_transfers.carry_out(self, action)
            elif isinstance(action, CALLBACK_ACTIONS):
                self._callback_action(action)
        if rows:
            self.rows_today.extend(rows)
            self._log_rows(rows)
        self._forget_ended()

    def _offer(self, action: ev.OfferAgent) -> None:
        info = self.calls.get(action.call_id)
        if info is not None:
            info.offer_ids.add(action.offer_id)
        self._offer_sent[action.offer_id] = time.monotonic()
        if action.kind != "call":
            if not self._callback_offer(action):  # no worker slot free to ring with
                self._handle(ev.OfferFailed(action.offer_id, "error"))
            return
        sent = self._send(action.call_id, m.Offer(
            action.call_id, action.offer_id, action.agent_id,
            self._agent_uri(action.agent_id), action.queue, round(action.wait_s, 3),
            action.ring_timeout_s, action.record))
        if info is not None:
            self._tell_agent(info, "offered", agent_id=action.agent_id,
                             call=self.call_view(info, "ringing"))
        if not sent:
            # The worker is gone (its calls are being closed): the ring cannot happen.
            self._handle(ev.OfferFailed(action.offer_id, "rejected"))

    def _connected(self, action: ev.CallConnected) -> None:
        info = self.calls.get(action.call_id)
        if info is None and self.is_callback(action.call_id):
            self._send(action.call_id, m.Connect(action.call_id, action.offer_id,
                                                 action.agent_id))
            self._callback_connected(action)
            return
        if info is not None:
            info.agent_id, info.connected_at = action.agent_id, self._clock()
            info.offer_ids.clear()
            self.last_call[action.agent_id] = info
        self._send(action.call_id, m.Connect(action.call_id, action.offer_id,
                                             action.agent_id))
        if info is not None:
            self._tell_agent(info, "connected", call=self.call_view(info, "connected"))

    def _state_changed(self, action: ev.AgentStateChanged) -> None:
        agent_id = action.agent_id
        now = self._clock()
        self._agent_event(agent_id, {"event": "state", "at": now, "state": action.new,
                                     "old": action.old, "reason": action.reason})
        if action.old == "on_call":
            info = self.last_call.get(agent_id)
            agent = self.acd.agents.get(agent_id)
            queue = self.acd.queues.get(info.queue) if info else None
            ended: dict[str, Any] = {
                "event": "ended", "at": now, "call_id": info.call_id if info else "",
                "by": (info.ended_by or "system") if info else "system",
                "wrapup_s": queue.cfg.wrapup_s if queue and agent else 0.0}
            if info is not None and info.ended_by == "not_reached":  # released at once
                ended.update(wrapup_s=0.0, outcome=info.outcome)
            self._agent_event(agent_id, ended)

    def _forget_ended(self) -> None:
        """Drop calls the core no longer holds (their last row is written)."""
        for call_id in [c for c in self.calls if c not in self.acd.entries]:
            del self.calls[call_id]

    def _tell_agent(self, info: CallInfo, event: str, agent_id: str = "",
                    **fields: Any) -> None:
        who = agent_id or info.agent_id
        if who:
            self._agent_event(who, {"event": event, "at": self._clock(), **fields})

    # ---- views ----------------------------------------------------------------------

    def call_view(self, info: CallInfo, state: str | None = None) -> dict[str, Any]:
        if state is None:
            entry = self.acd.entries.get(info.call_id)
            if entry is None:
                state = "ended"
            elif entry.state is EntryState.CONNECTED:
                state = "held" if info.held else "connected"
            else:
                state = "ringing" if entry.state is EntryState.OFFERED else "waiting"
        return {"call_id": info.call_id, "queue": info.queue, "state": state,
                "caller": info.caller, "caller_name": info.data.get("caller_name", ""),
                "wait_s": round((info.connected_at or self._clock()) - info.joined_at, 1),
                "since": info.connected_at or info.joined_at, "data": dict(info.data),
                # for the screen pop: the menu choices taken ("node:key") and the language
                "ivr_path": [p for p in info.data.get("ivr_path", "").split(" > ") if p],
                "language": info.data.get("language", "")}

    def current_call(self, agent_id: str) -> CallInfo | None:
        agent = self.acd.agents.get(agent_id)
        if agent is None:
            return None
        if agent.offer_id is not None:
            offer = self.acd.offers.get(agent.offer_id)
            if offer is not None:
                return self.calls.get(offer.call_id)
        if agent.call_id is not None:
            return self.calls.get(agent.call_id) or self.last_call.get(agent_id)
        return None


def with_store_agents(config: AcdConfig, agents: Iterable[Any]) -> AcdConfig:
    """The ACD file's configuration plus the agents added with ``ivr agent add --queues``
    (the store's ``agents_sip`` rows): the file wins for an agent in both; a stored queue
    the file does not define is left out, with a warning."""
    extra: dict[str, Any] = {}
    for row in agents:
        if row.agent_id in config.agents:
            continue
        queues = {q: level for q, level in row.queues if q in config.queues}
        unknown = [q for q, _ in row.queues if q not in config.queues]
        if unknown:
            log.warning("agent %s: queues %s are not in the ACD file; left out",
                        row.agent_id, ", ".join(unknown))
        if queues:
            extra[row.agent_id] = {"name": row.display_name, "queues": queues}
    if not extra:
        return config
    data = config.model_dump()
    data["agents"] = {**data["agents"], **extra}
    return AcdConfig.model_validate(data)
