"""The supervisor's leg of a call in the worker (``ivr/supervision_messages.py``), used by
``ivr/queue_call.AcdCall``: placed like an agent leg, then connected in the call's bridge
one direction at a time::

    listen    caller -> sup, agent -> sup
    whisper   + sup -> agent          (the caller never hears the supervisor)
    barge     + sup -> agent, sup -> caller

A mode switch changes the levels of the same leg. The leg ends with the call, on
``SuperviseEnd``, or when the supervisor hangs up (``SupervisorGone``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from media import CallLeg, LegEvent, LegFailed, LegHungUp, MediaError, MediaReady

from . import supervision_messages as sm

if TYPE_CHECKING:
    from .queue_call import AcdCall

log = logging.getLogger("ivr.supervisor_leg")


class SupervisorLeg:
    def __init__(self, call: AcdCall) -> None:
        self.call = call
        self.leg: CallLeg | None = None
        self.supervisor = ""
        self.mode = ""
        self.connected = False

    def owns(self, event: LegEvent) -> bool:
        return self.leg is not None and event.leg_id == self.leg.leg_id

    async def on_message(self, msg: sm.Supervise | sm.SuperviseMode | sm.SuperviseEnd) -> None:
        call = self.call
        if isinstance(msg, sm.Supervise):
            if self.leg is not None:
                await self._gone("replaced")
            self.supervisor, self.mode = msg.supervisor, msg.mode
            call._note("supervisor.calling", {"supervisor": msg.supervisor, "mode": msg.mode})
            try:
                self.leg = await call.media.place_call(msg.uri, {"X-Call-Id": call.call_id,
                                                                 "X-Supervise": msg.mode})
            except (MediaError, ValueError) as exc:
                log.warning("call %s: cannot call supervisor %s: %s", call.call_id,
                            msg.supervisor, exc)
                call.link.send_message(sm.SupervisorGone(call.call_id, msg.supervisor,
                                                         "error"))
                return
            call._forward(self.leg)
        elif isinstance(msg, sm.SuperviseMode):
            self.mode = msg.mode
            call._note("supervisor.mode", {"supervisor": self.supervisor, "mode": msg.mode})
            if self.connected:
                await self.apply()
        elif isinstance(msg, sm.SuperviseEnd) and self.leg is not None:
            leg = self.leg
            await self._gone("ended")
            try:
                await leg.hangup()
            except MediaError:
                pass

    async def on_event(self, event: LegEvent) -> None:
        if self.leg is None:
            return
        if isinstance(event, MediaReady) and not self.connected:
            self.connected = True
            call = self.call
            call._note("supervisor.connected", {"supervisor": self.supervisor,
                                                "mode": self.mode})
            await self.apply()
        elif isinstance(event, LegFailed | LegHungUp):
            supervisor = self.supervisor
            why = "hangup" if isinstance(event, LegHungUp) and self.connected else "failed"
            await self._gone(why)
            if self.call.caller.ended is None:
                self.call.link.send_message(sm.SupervisorGone(self.call.call_id, supervisor,
                                                              why))

    async def apply(self) -> None:
        """Connect the supervisor per the mode, with the agent now bridged to the caller
        (again after a transfer: the new agent)."""
        call, leg = self.call, self.leg
        agent = call._bridged()
        if leg is None:
            return
        to_agent, to_caller = sm.levels(self.mode)
        try:
            await call.media.connect(call.caller, call.caller, leg, 1.0, to_caller)
            if agent is not None:
                await call.media.connect(call.caller, agent.leg, leg, 1.0, to_agent)
        except MediaError as exc:
            log.warning("call %s: supervisor's bridge: %s", call.call_id, exc)

    async def _gone(self, why: str) -> None:
        call, leg = self.call, self.leg
        self.leg, self.connected = None, False
        if leg is not None:
            call._note("supervisor.gone", {"supervisor": self.supervisor, "why": why})
            try:
                await call.media.disconnect(call.caller, leg)
            except MediaError:
                pass

    async def caller_gone(self) -> None:
        leg = self.leg
        await self._gone("caller-gone")
        if leg is not None and leg.ended is None:
            try:
                await leg.hangup()
            except MediaError:
                pass
