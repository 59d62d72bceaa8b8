"""Supervising calls in the controller: a supervisor listens to, whispers to or barges
into an agent's call (API ``/api/v1/calls/{id}/supervise``, ``ivr supervise``). The worker
holding the call rings the supervisor's phone through the front, like an agent leg, and
connects it in the call's bridge (``ivr/supervisor_leg.py``); a mode switch keeps the leg.

The ACD file says who may supervise over the API and whether the agent is told of a
listen (``supervision: {supervisors: [...], tell_agent_on_listen: false}``); whisper and
barge are always told (the agent hears the supervisor). The agent's WebSocket gets
``{"event": "supervised", "at", "call_id", "mode": "listen" | "whisper" | "barge" | "",
"supervisor"}`` (mode "" when it ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import supervision_messages as sm
from .acd import AcdError
from .logs import log_event

if TYPE_CHECKING:
    from .acd_service import AcdService


class SupervisionError(AcdError):
    """Refused; ``status``: the API's answer (404 no such call, 409 not now, 422 bad
    value, 403 not a supervisor)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Supervision:
    call_id: str
    supervisor: str
    mode: str
    agent_id: str
    told: bool = False


class CallSupervision:
    def __init__(self, service: AcdService) -> None:
        self.service = service
        self.active: dict[str, Supervision] = {}

    def _check_mode(self, mode: str) -> None:
        if mode not in sm.MODES:
            raise SupervisionError(f"mode {mode!r}: one of {', '.join(sm.MODES)}", 422)

    def may_supervise(self, agent_id: str) -> bool:
        return agent_id in self.service.acd.config.supervision.supervisors

    def _live(self, call_id: str) -> Supervision | None:
        current = self.active.get(call_id)
        if current is not None and call_id not in self.service.calls:
            del self.active[call_id]  # the call ended: so did its supervision
            return None
        return current

    def start(self, call_id: str, mode: str, phone: str) -> dict[str, Any]:
        self._check_mode(mode)
        acd = self.service.acd
        entry = acd.entries.get(call_id)
        if entry is None:
            raise SupervisionError(f"no call {call_id!r} in the ACD", 404)
        if entry.state.value != "connected" or entry.agent_id is None:
            raise SupervisionError(f"call {call_id} is {entry.state.value}: no agent is "
                                   "talking to the caller yet", 409)
        if phone not in acd.agents:
            raise SupervisionError(f"no phone {phone!r}: the supervisor's phone registers "
                                   "as an agent of the ACD file or `ivr agent add`", 422)
        if phone == entry.agent_id:
            raise SupervisionError(f"{phone} is the call's own agent", 422)
        current = self._live(call_id)
        if current is not None:
            raise SupervisionError(f"call {call_id} is already supervised by "
                                   f"{current.supervisor}: switch the mode or end it", 409)
        sup = Supervision(call_id, phone, mode, entry.agent_id)
        self.active[call_id] = sup
        self.service._send(call_id, sm.Supervise(call_id, phone, self.service._agent_uri(phone),
                                                 mode))
        self._tell(sup)
        log_event("acd.supervise", call_id=call_id, supervisor=phone, mode=mode)
        return self.view(sup)

    def switch(self, call_id: str, mode: str) -> dict[str, Any]:
        self._check_mode(mode)
        sup = self._live(call_id)
        if sup is None:
            raise SupervisionError(f"call {call_id} is not supervised", 409)
        sup.mode = mode
        self.service._send(call_id, sm.SuperviseMode(call_id, mode))
        self._tell(sup)
        log_event("acd.supervise_mode", call_id=call_id, supervisor=sup.supervisor, mode=mode)
        return self.view(sup)

    def end(self, call_id: str) -> dict[str, Any]:
        sup = self._live(call_id)
        if sup is None:
            raise SupervisionError(f"call {call_id} is not supervised", 409)
        self.service._send(call_id, sm.SuperviseEnd(call_id))
        self._drop(sup)
        return {"call_id": call_id, "mode": ""}

    def on_message(self, msg: sm.SupervisorGone) -> None:
        sup = self.active.get(msg.call_id)
        if sup is not None and sup.supervisor == msg.supervisor:
            log_event("acd.supervisor_gone", call_id=msg.call_id, supervisor=msg.supervisor,
                      reason=msg.reason)
            self._drop(sup)

    def _drop(self, sup: Supervision) -> None:
        self.active.pop(sup.call_id, None)
        if sup.told:
            sup.mode = ""
            self._event(sup)

    def _tell(self, sup: Supervision) -> None:
        config = self.service.acd.config.supervision
        if sup.mode != "listen" or config.tell_agent_on_listen or sup.told:
            sup.told = True
            self._event(sup)

    def _event(self, sup: Supervision) -> None:
        self.service._agent_event(sup.agent_id, {
            "event": "supervised", "at": self.service._clock(), "call_id": sup.call_id,
            "mode": sup.mode, "supervisor": sup.supervisor})

    @staticmethod
    def view(sup: Supervision) -> dict[str, Any]:
        return {"call_id": sup.call_id, "mode": sup.mode, "phone": sup.supervisor,
                "agent_id": sup.agent_id}
