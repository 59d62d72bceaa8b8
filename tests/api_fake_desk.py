"""An in-memory AgentDesk for the agent API's tests: pure logic, no ACD, no store.

It keeps agents, checks passwords against HA1 (as the controller's desk does), records every
change it accepted (``changes``) and lets a test push events to the subscribers of an agent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ivr.agent_credentials import digest_ha1
from ivr.desk import DeskError

REALM = "callcenter"
NOT_READY_REASONS = ["lunch", "break", "training", "no-answer"]
REASON_CODES = [{"code": "billing/refund", "label": "Refund"},
                {"code": "billing/invoice", "label": "Invoice question"},
                {"code": "support/reset", "label": "Password reset"}]


@dataclass
class FakeAgent:
    agent_id: str
    name: str
    ha1: str
    state: str = "logged_out"
    reason: str = ""
    since: float = 0.0
    queues: dict[str, int] = field(default_factory=dict)
    call: dict[str, Any] | None = None
    last_code: str = ""
    last_note: str = ""


class FakeDesk:
    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.changes: list[tuple[str, ...]] = []
        self.calls_of: dict[str, dict[str, dict[str, Any]]] = {}
        self._subscribers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self.fail_with: Exception | None = None  # raised by agent() to test 500s

    def add(self, agent_id: str, name: str, password: str, **queues: int) -> FakeAgent:
        agent = FakeAgent(agent_id, name, digest_ha1(agent_id, REALM, password),
                          queues=dict(queues))
        self.agents[agent_id] = agent
        return agent

    def give_call(self, agent_id: str, call: dict[str, Any]) -> None:
        self.agents[agent_id].call = call
        self.calls_of.setdefault(agent_id, {})[call["call_id"]] = call

    # --- AgentDesk ---------------------------------------------------------------
    def verify_password(self, agent_id: str, password: str) -> bool:
        agent = self.agents.get(agent_id)
        return agent is not None and digest_ha1(agent_id, REALM, password) == agent.ha1

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        if self.fail_with is not None:
            raise self.fail_with
        a = self.agents.get(agent_id)
        if a is None:
            return None
        return {"id": a.agent_id, "name": a.name, "state": a.state, "reason": a.reason,
                "since": a.since, "queues": dict(a.queues), "call": a.call}

    def _get(self, agent_id: str) -> FakeAgent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise DeskError(f"no agent {agent_id}", 404)
        return agent

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        agent = self._get(agent_id)
        state = state.replace("-", "_")
        if state not in ("ready", "not_ready", "logged_out"):
            raise DeskError(f"unknown state {state!r}", 422)
        if state == "not_ready" and reason not in NOT_READY_REASONS:
            raise DeskError(f"reason {reason!r} is not a not-ready reason "
                            f"({', '.join(NOT_READY_REASONS)})", 422)
        agent.state, agent.reason = state, reason if state == "not_ready" else ""
        self.changes.append(("state", agent_id, state, reason))
        view = self.agent(agent_id)
        assert view is not None
        return view

    def wrapup(self, agent_id: str, code: str, note: str = "", call_id: str = ""
               ) -> dict[str, Any]:
        agent = self._get(agent_id)
        if agent.state != "wrap_up":
            raise DeskError(f"agent {agent_id} is {agent.state}, not in wrap-up: no call "
                            "to report a code for", 409)
        if code not in {c["code"] for c in REASON_CODES}:
            raise DeskError(f"unknown reason code {code!r}", 422)
        agent.last_code, agent.last_note, agent.state = code, note, "ready"
        self.changes.append(("wrapup", agent_id, code, note) + ((call_id,) if call_id else ()))
        view = self.agent(agent_id)
        assert view is not None
        return view

    def current_call(self, agent_id: str) -> dict[str, Any] | None:
        return self._get(agent_id).call

    def call_for(self, agent_id: str, call_id: str) -> dict[str, Any] | None:
        return self.calls_of.get(agent_id, {}).get(call_id)

    def figures_today(self, agent_id: str) -> dict[str, Any]:
        self._get(agent_id)
        return {"calls_handled": 3, "talk_time_s": 310.0, "aht_s": 120.0,
                "hold_time_s": 15.0, "missed": 1, "not_ready_s": 600.0}

    def reason_codes(self, search: str = "") -> list[dict[str, str]]:
        s = search.lower()
        return [c for c in REASON_CODES if s in c["code"] or s in c["label"].lower()]

    def not_ready_reasons(self) -> list[str]:
        return list(NOT_READY_REASONS)

    def queue_script(self, queue: str, language: str = "") -> dict[str, Any]:
        if queue != "sales":
            raise DeskError(f"no queue {queue!r}", 404)
        self.changes.append(("script", queue, language))
        return {"queue": queue, "language": "en", "steps": ["Hello"],
                "banned_phrases": ["you're wrong"]}

    def subscribe(self, agent_id: str) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.setdefault(agent_id, []).append(q)
        return q

    def unsubscribe(self, agent_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subs = self._subscribers.get(agent_id, [])
        if queue in subs:
            subs.remove(queue)

    # --- for tests ---------------------------------------------------------------
    def subscribers(self, agent_id: str) -> int:
        return len(self._subscribers.get(agent_id, []))

    def push(self, agent_id: str, event: dict[str, Any]) -> None:
        for q in self._subscribers.get(agent_id, []):
            q.put_nowait(event)
