"""The agent desk over the live ACD (``ivr/acd_service.py``) and the store: what the agent
API (``ivr/api``) and ``ivr agent ...`` commands act through. ``ivr/desk.py`` describes the
interface and the shapes it returns."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from . import acd_transfers
from .acd import AcdError, InvalidStateError, TransferRefused
from .acd import metrics as acd_metrics
from .acd_service import AcdService
from .agent_credentials import AgentSip, digest_ha1
from .desk import DeskError

log = logging.getLogger("ivr.agent_desk")

EVENT_QUEUE_MAX = 1000  # per subscriber; a screen that stops reading loses the oldest


def start_of_day(now: float) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


class Desk:
    def __init__(self, service: AcdService,
                 credentials: Callable[[str], AgentSip | None],
                 clock: Callable[[], float] = time.time,
                 survey_scores: Callable[[float], list[tuple[str, int]]] | None = None
                 ) -> None:
        self.service = service
        self._credentials = credentials
        self._survey_scores = survey_scores or (lambda since: [])  # (call id, score)
        self._clock = clock
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    # ---- events ---------------------------------------------------------------------

    def publish(self, agent_id: str, event: dict[str, Any]) -> None:
        for queue in self._subscribers.get(agent_id, ()):
            if queue.full():
                queue.get_nowait()
                log.warning("agent %s: events not read; the oldest was dropped", agent_id)
            queue.put_nowait(event)

    def subscribe(self, agent_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE_MAX)
        self._subscribers.setdefault(agent_id, set()).add(queue)
        return queue

    def unsubscribe(self, agent_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subs = self._subscribers.get(agent_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subscribers[agent_id]

    # ---- identity -------------------------------------------------------------------

    def verify_password(self, agent_id: str, password: str) -> bool:
        row = self._credentials(agent_id)
        if row is None or not password:
            digest_ha1(agent_id, "x", password)  # as slow as a real check
            return False
        return hmac.compare_digest(digest_ha1(agent_id, row.realm, password), row.ha1)

    def _agent(self, agent_id: str) -> Any:
        agent = self.service.acd.agents.get(agent_id)
        if agent is None:
            raise DeskError(f"no agent {agent_id!r} in the ACD (add them to the ACD file or "
                            "with `ivr agent add ... --queues`)", 404)
        return agent

    # ---- views ----------------------------------------------------------------------

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        agent = self.service.acd.agents.get(agent_id)
        if agent is None:
            return None
        return {"id": agent.agent_id, "name": agent.name, "state": agent.state.value,
                "reason": agent.reason, "since": agent.state_since or None,
                "queues": dict(agent.queues), "call": self.current_call(agent_id)}

    def current_call(self, agent_id: str) -> dict[str, Any] | None:
        info = self.service.current_call(agent_id)
        if info is None:
            return None
        agent = self.service.acd.agents[agent_id]
        view = self.service.call_view(info)
        if agent.state.value == "wrap_up":
            view["state"] = "wrap_up"
        return view

    def call_for(self, agent_id: str, call_id: str) -> dict[str, Any] | None:
        current = self.service.current_call(agent_id)
        last = self.service.last_call.get(agent_id)
        for info in (current, last):
            if info is not None and info.call_id == call_id:
                return self.service.call_view(info)
        return None

    def figures_today(self, agent_id: str) -> dict[str, Any]:
        self._agent(agent_id)
        now = self._clock()
        since = start_of_day(now)
        rows = [r for r in self.service.rows_today if r.at >= since]
        figures = dataclasses.asdict(acd_metrics.agent_figures(rows, agent_id, now))
        handled = figures["calls_handled"]
        figures["avg_talk_s"] = round(figures["talk_s"] / handled, 1) if handled else None
        if figures["aht_s"] is not None:
            figures["aht_s"] = round(figures["aht_s"], 1)
        figures["missed"] = sum(1 for r in rows if r.agent_id == agent_id
                                and r.event.value == "RINGNOANSWER")
        survey = acd_metrics.agent_survey_scores(rows, agent_id, self._survey_scores(since))
        figures["survey_count"], figures["survey_mean"] = survey.count, survey.mean
        return figures

    def reason_codes(self, search: str = "") -> list[dict[str, str]]:
        config = self.service.acd.config
        found = (config.search_reasons(search) if search
                 else sorted(config.reason_codes().items()))
        return [{"code": code, "label": label} for code, label in found]

    def not_ready_reasons(self) -> list[str]:
        return list(self.service.acd.config.not_ready_reasons)

    def queue_script(self, queue: str, language: str = "") -> dict[str, Any]:
        config = self.service.acd.config
        if queue not in config.queues:
            raise DeskError(f"no queue {queue!r}", 404)
        used, steps = config.script(queue, language)
        return {"queue": queue, "language": used, "steps": steps,
                "banned_phrases": list(config.banned_phrases)}

    # ---- changes --------------------------------------------------------------------

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        self._agent(agent_id)
        try:
            self.service.request_state(agent_id, state, reason)
        except AcdError as exc:
            raise DeskError(str(exc), 422) from None
        view = self.agent(agent_id)
        assert view is not None
        return view

    def wrapup(self, agent_id: str, code: str, note: str = "", call_id: str = ""
               ) -> dict[str, Any]:
        agent = self._agent(agent_id)
        if call_id and any(r.call_id == call_id and r.agent_id == agent_id
                           and r.event.value == "WRAPUP" for r in self.service.rows_today):
            # a softphone sending again what it kept (after a restart of either side):
            # refused without harm, and the softphone drops it from its outbox
            raise DeskError(f"agent {agent_id}: call {call_id} already has its code", 409)
        if call_id and call_id not in (agent.call_id, agent.last_call_id):
            raise DeskError(f"call {call_id} is not agent {agent_id}'s last call: its "
                            "wrap-up can no longer be given", 409)
        if len(note) > 2000:
            raise DeskError("the note is longer than 2000 characters", 422)
        try:
            self.service.wrapup(agent_id, code, note)
        except AcdError as exc:
            status = 422 if "unknown wrap-up code" in str(exc) else 409
            raise DeskError(str(exc), status) from None
        view = self.agent(agent_id)
        assert view is not None
        return view

    # ---- transfers ------------------------------------------------------------------

    def transfer_request(self, agent_id: str, what: str, to: str = "") -> dict[str, Any]:
        """``what``: transfer, consult, complete, cancel, conference. 409 when the agent
        has no call or the call is not in a state for it; 422 when the target is refused."""
        self._agent(agent_id)
        try:
            call_id = acd_transfers.request(self.service, agent_id, what, to)
        except TransferRefused as exc:
            raise DeskError(str(exc), 422) from None
        except (AcdError, InvalidStateError) as exc:
            raise DeskError(str(exc), 409) from None
        return {"call_id": call_id, "to": to} if to else {"call_id": call_id}

    # ---- supervision ----------------------------------------------------------------

    def supervise(self, by: str | None, call_id: str, mode: str, phone: str = "",
                  action: str = "start") -> dict[str, Any]:
        """``action``: start (``phone`` rings), switch, end. ``by``: the signed-in agent
        (must be a supervisor of the ACD file), None for an operator (``ivr supervise``)."""
        from .call_supervision import SupervisionError

        supervision = self.service.supervision
        if by is not None and not supervision.may_supervise(by):
            raise DeskError(f"agent {by} may not supervise calls (the ACD file's "
                            "supervision.supervisors)", 403)
        try:
            if action == "start":
                return supervision.start(call_id, mode, phone or (by or ""))
            if action == "switch":
                return supervision.switch(call_id, mode)
            return supervision.end(call_id)
        except SupervisionError as exc:
            raise DeskError(str(exc), exc.status) from None
