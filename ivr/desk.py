"""What the agent API asks of the controller: the agent's desk.

``ivr/api/`` (HTTP + WebSocket) serves agents through this interface only; the controller
implements it over the live ACD and the store. Everything returned is plain JSON-ready
data (dicts of str/int/float/bool/None, lists), so the API never touches ACD objects.

Shapes (all times are Unix seconds, durations ``*_s``):

agent view::

    {"id": "1001", "name": "Alice Chen", "state": "ready", "reason": "",
     "since": 1764590000.0 | None (not signed in since the stack started),
     "queues": {"sales": 8}, "call": <call view> | None}

call view (the agent's own current or last call)::

    {"call_id": "...", "queue": "sales", "state": "ringing" | "connected" | "held" |
     "wrap_up" | "ended", "caller": "1000", "caller_name": "", "wait_s": 12.0,
     "since": 1764590000.0, "data": {"account": "42", ...}}

events pushed to an agent's WebSocket (each has ``event`` and ``at``)::

    {"event": "state", "at", "state", "old", "reason"}
    {"event": "offered", "at", "call": <call view>}          the phone is being rung
    {"event": "connected", "at", "call": <call view>}
    {"event": "held" | "resumed", "at", "call_id"}
    {"event": "ended", "at", "call_id", "by": "caller" | "agent" | "system",
     "wrapup_s": 30.0}
    {"event": "transferred", "at", "call_id", "to", "by", "kind": "blind" | "attended"}
    {"event": "consult", "at", "call_id", "state": "ringing" | "talking" | "conference" |
     "ended", "to", "agent_id", "consult_agent", "reason"}
    {"event": "transfer_refused", "at", "call_id", "to", "reason"}   (a phone's REFER)
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class DeskError(Exception):
    """A request the desk refuses. ``status`` is the HTTP status the API answers with
    (404 unknown agent/call, 409 not possible in the current state, 422 bad value);
    the message says what was wrong, for the agent to read."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class AgentDesk(Protocol):
    def verify_password(self, agent_id: str, password: str) -> bool:
        """True when ``password`` is the agent's SIP password (checked against HA1)."""
        ...

    def agent(self, agent_id: str) -> dict[str, Any] | None: ...

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        """``state``: ready, not_ready, logged_out (also with '-'); returns the agent view
        after the change (an agent on a call gets it at the end of the call)."""
        ...

    def wrapup(self, agent_id: str, code: str, note: str = "", call_id: str = ""
               ) -> dict[str, Any]:
        """Code the agent's current or last call; ``call_id`` (optional) names it, and
        any other call is refused (409)."""
        ...

    def current_call(self, agent_id: str) -> dict[str, Any] | None: ...

    def call_for(self, agent_id: str, call_id: str) -> dict[str, Any] | None:
        """The call view of ``call_id`` if it is (or was, today) this agent's call."""
        ...

    def figures_today(self, agent_id: str) -> dict[str, Any]:
        """calls_handled, talk_time_s, aht_s, hold_time_s, missed, not_ready_s, ..."""
        ...

    def reason_codes(self, search: str = "") -> list[dict[str, str]]:
        """[{"code": "billing/refund", "label": "Refund"}], filtered by ``search``."""
        ...

    def not_ready_reasons(self) -> list[str]: ...

    def queue_script(self, queue: str, language: str = "") -> dict[str, Any]:
        """{"queue", "language", "steps": [...], "banned_phrases": [...]}; 404 no queue."""
        ...

    def subscribe(self, agent_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue of this agent's events (see above) until ``unsubscribe``."""
        ...

    def unsubscribe(self, agent_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None: ...

    def transfer_request(self, agent_id: str, what: str, to: str = "") -> dict[str, Any]:
        """transfer / consult (``to``: agent:ID, queue:NAME, flow:NODE, tel:NUMBER),
        complete, cancel, conference: ``{"call_id", "to"}``; DeskError 409 (no call, not
        now) or 422 (target refused)."""
        ...

    def supervise(self, by: str | None, call_id: str, mode: str, phone: str = "",
                  action: str = "start") -> dict[str, Any]:
        """Listen / whisper / barge on a call (``action`` start, switch, end); ``by``: the
        signed-in agent (a supervisor), None for an operator. DeskError 403/404/409/422."""
        ...
