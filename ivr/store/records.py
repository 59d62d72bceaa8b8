"""What the call store holds and takes, apart from any database: the recorder interface a
call session writes through, the rows it reads back, and its one error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..acd.queue_log import QueueLogRow

# Why the front refused a call (blocked_calls.reason); the SIP code it answered with.
BLOCK_REASONS = {
    "stack_full": "every worker is at its call limit (486)",
    "no_worker": "no worker is up (503)",
    "source_limit": "front.max_calls_per_source calls already up from that address (503)",
    "global_limit": "front.max_calls calls already up (503)",
    "flood": "the source is flooding and pike dropped the INVITE (no answer)",
    "not_allowed": "the caller is not in front.allowed_networks or failed authentication (403)",
}

# The CallRecorder methods, which apply_batch accepts by name.
RECORDER_METHODS = frozenset({
    "call_arrived", "call_answered", "call_dtmf", "call_node", "call_menu_choice",
    "call_event", "call_ended",
})
# (method, call_id, at, keyword arguments): one recorder call, as apply_batch takes it.
StoreOp = tuple[str, str, float, dict[str, Any]]
# What one batch holds: recorder calls and queue-log rows, written in the order given.
BatchItem = StoreOp | QueueLogRow


class CallRecorder(Protocol):
    """What a call session writes: the store itself, or its proxy in a pooled worker."""

    def call_arrived(self, call_id: str, at: float, *, sip_call_id: str, worker: str,
                     from_uri: str, to_uri: str, flow: str, flow_version: int) -> None: ...
    def call_answered(self, call_id: str, at: float, *, codec: str, telephone_event: bool,
                      inband_dtmf: bool) -> None: ...
    def call_dtmf(self, call_id: str, at: float, *, digit: str, method: str,
                  node: str) -> None: ...
    def call_node(self, call_id: str, at: float, *, node: str, node_type: str) -> None: ...
    def call_menu_choice(self, call_id: str, at: float, *, node: str, key: str,
                         target: str) -> None: ...
    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, Any]) -> None: ...
    def call_ended(self, call_id: str, at: float, *, reason: str, hangup_by: str,
                   sip_code: int | None, sip_reason: str | None) -> None: ...


class StoreError(Exception):
    """The store cannot be opened or written; the message names the database file."""


@dataclass(frozen=True)
class ReplayOutcome:
    applied: int
    skipped: int  # already in the store
    failed: list[tuple[StoreOp, StoreError]]


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    sip_call_id: str
    worker: str
    from_uri: str
    to_uri: str
    flow: str
    flow_version: int
    arrived_at: float
    answered_at: float | None
    ended_at: float | None
    codec: str | None
    dtmf_method: str | None
    last_node: str | None
    menu_path: str
    end_reason: str | None
    hangup_by: str | None
    sip_code: int | None
    sip_reason: str | None


@dataclass(frozen=True)
class BlockedCall:
    """A call the SIP front refused (written by Kamailio itself, see docs/kamailio.md).
    ``sip_code`` 0: dropped without an answer (a flood)."""

    at: float
    reason: str
    sip_code: int
    source: str
    from_uri: str
    to_uri: str
    sip_call_id: str


@dataclass(frozen=True)
class CallEventRecord:
    call_id: str
    at: float
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Recording:
    """A recording linked to a call: an agent segment (two channels, caller left, agent
    right) or a voicemail message (one channel, no agent). ``started_at`` is Unix time."""

    call_id: str
    agent_id: str
    queue: str
    path: str
    started_at: float
    duration_s: float
    channels: int


class QueueEntryRecord(NamedTuple):
    """A caller still in a queue by the log: an ENTERQUEUE row and no final row after it
    (the restart's view of the queues; ``at`` is the enter time, ``priority`` the entry's,
    0 when the row has none)."""

    call_id: str
    queue: str
    at: float
    priority: int


class AgentStateRecord(NamedTuple):
    """An agent's state by the latest agent-state row of the log (AgentState values)."""

    state: str
    reason: str
    at: float
