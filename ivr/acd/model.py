"""The ACD's three state machines: the agent, the caller's queue entry and the offer.

Agent (one per person, across all the queues they serve)::

    LOGGED_OUT ──login──▶ READY ◀──────────▶ NOT_READY(reason)
         ▲                 │  ▲                    ▲
         │               offer│ no answer/cancel    │ autopause ("no-answer")
         │                 ▼  │                    │
         └── logout ── RESERVED (phone ringing) ───┘
                           │ answer
                           ▼
                        ON_CALL ──call ends──▶ WRAP_UP ──timer/code──▶ READY
                                                (or the state asked for meanwhile)

    Any logged-in state except ON_CALL may go to LOGGED_OUT or NOT_READY at once; asked
    during ON_CALL, the change waits for the end of wrap-up. Wrap-up is the agent's own: one
    per call, whichever queue it came from; no other queue offers to an agent in WRAP_UP.

QueueEntry (one per caller per queue)::

    WAITING ──offer──▶ OFFERED ──answer──▶ CONNECTED ──hang-up──▶ ENDED(completed)
       ▲                  │  ▲                  │ │
       └── no answer ─────┘  └─ blind transfer ─┘ └─ transfer out ──▶ ENDED(transferred)
       └───────── blind transfer to a queue ───────┘ (transfer.py)
    WAITING/OFFERED ──▶ ENDED(abandoned | timeout | key | no-agents)

    A callback entry (``kind`` callback or abandoned, ``callbacks.py``) has one more state:
    the agent answered and the customer is being dialled::

    OFFERED ──agent answers──▶ DIALING ──customer answers──▶ CONNECTED ──▶ ENDED
                                  │ no answer / busy / voicemail
                                  ├──▶ WAITING (retry: same place, not before retry_s)
                                  └──▶ ENDED(callback_failed: retries used up)

Offer (one ring of one agent for one entry)::

    RINGING ──▶ ANSWERED | NO_ANSWER | REJECTED | CANCELLED
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

log = logging.getLogger("ivr.acd")


class InvalidStateError(Exception):
    """A transition the state machine does not allow; the message names both states."""


class AgentState(enum.Enum):
    __hash__ = object.__hash__  # identity: Enum's own hash is slow on hot paths
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"  # an offer is ringing the agent's phone
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after-call work


_AGENT_MOVES: dict[AgentState, frozenset[AgentState]] = {
    AgentState.LOGGED_OUT: frozenset({AgentState.READY, AgentState.NOT_READY}),
    AgentState.READY: frozenset({AgentState.NOT_READY, AgentState.RESERVED,
                                 AgentState.LOGGED_OUT}),
    AgentState.NOT_READY: frozenset({AgentState.READY, AgentState.NOT_READY,
                                     AgentState.LOGGED_OUT}),
    AgentState.RESERVED: frozenset({AgentState.ON_CALL, AgentState.READY,
                                    AgentState.NOT_READY, AgentState.LOGGED_OUT}),
    AgentState.ON_CALL: frozenset({AgentState.WRAP_UP}),
    AgentState.WRAP_UP: frozenset({AgentState.READY, AgentState.NOT_READY,
                                   AgentState.LOGGED_OUT}),
}


@dataclass(eq=False)
class Agent:
    """One agent. ``queues`` maps queue name to proficiency (1-10); ``skills`` likewise for
    skills an entry may require (a queue's name is also a skill)."""

    agent_id: str
    name: str = ""
    queues: dict[str, int] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    order: int = 0  # place in the configuration: the `linear` strategy rings in this order
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""  # why NOT_READY
    state_since: float = 0.0
    idle_since: float = 0.0  # end of the last call's wrap-up, or sign-in
    calls_handled: int = 0
    talk_time_s: float = 0.0
    misses: int = 0  # ring-no-answers in a row
    offer_id: str | None = None  # the ringing offer (RESERVED)
    call_id: str | None = None  # the call being talked or wrapped up
    call_queue: str = ""
    wrapup_until: float | None = None
    pending: tuple[AgentState, str] | None = None  # asked for during ON_CALL
    last_call_id: str | None = None  # the call a wrap-up code applies to
    last_call_queue: str = ""
    coded_call_id: str | None = None  # the last call that got its code

    def proficiency(self, skill: str) -> int:
        return self.skills.get(skill, self.queues.get(skill, 0))

    def _set_state(self, new: AgentState, now: float, reason: str = "") -> AgentState:
        """Move to ``new``; returns the old state. Raises InvalidStateError if not allowed."""
        old = self.state
        if new not in _AGENT_MOVES[old]:
            raise InvalidStateError(f"agent {self.agent_id}: cannot go from {old.value} "
                                    f"to {new.value}")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("agent %s: %s -> %s %s", self.agent_id, old.value, new.value, reason)
        self.state = new
        self.reason = reason if new is AgentState.NOT_READY else ""
        self.state_since = now
        return old


class EntryState(enum.Enum):
    __hash__ = object.__hash__  # identity: Enum's own hash is slow on hot paths
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    DIALING = "dialing"  # a callback: the agent answered, the customer is being dialled
    ENDED = "ended"


class Outcome(enum.Enum):
    """How a queue entry ended: exactly one per entry."""

    __hash__ = object.__hash__  # identity: Enum's own hash is slow on hot paths
    COMPLETED_CALLER = "completed_caller"  # answered; the caller hung up
    COMPLETED_AGENT = "completed_agent"  # answered; the agent hung up
    ABANDONED = "abandoned"  # the caller hung up before an agent answered
    TIMEOUT = "timeout"  # max_wait_s reached: overflow
    KEY = "key"  # the caller left with a key (e.g. voicemail instead)
    NO_AGENTS = "no_agents"  # when_no_agents: nobody signed in
    FULL = "full"  # max_size reached: never entered
    FAILED = "failed"  # the stack lost the call (its worker died) before an agent answered
    TRANSFERRED = "transferred"  # sent on by its agent to another queue, a flow or a number
    CALLBACK = "callback"  # the caller asked to be called back and hung up (EXITCALLBACK)
    CALLBACK_FAILED = "callback_failed"  # a callback closed unreached (CALLBACKCLOSED)
    EXPIRED = "expired"  # an abandoned call's callback not made in time (CALLBACKCLOSED)


_ENTRY_MOVES: dict[EntryState, frozenset[EntryState]] = {
    EntryState.WAITING: frozenset({EntryState.OFFERED, EntryState.ENDED}),
    EntryState.OFFERED: frozenset({EntryState.WAITING, EntryState.CONNECTED,
                                   EntryState.DIALING, EntryState.ENDED}),
    EntryState.DIALING: frozenset({EntryState.CONNECTED, EntryState.WAITING,
                                   EntryState.ENDED}),
    # an agent's blind transfer rings another agent (OFFERED) or re-queues (WAITING)
    EntryState.CONNECTED: frozenset({EntryState.ENDED, EntryState.OFFERED, EntryState.WAITING}),
    EntryState.ENDED: frozenset(),
}


@dataclass(eq=False)
class QueueEntry:
    """A caller waiting in (or served by) one queue. ``seq`` and ``enter_at`` are kept for
    the entry's whole life, so a re-queued call keeps its place."""

    call_id: str
    queue: str
    priority: int
    enter_at: float
    seq: int
    skills: tuple[str, ...] = ()
    caller: str = ""
    state: EntryState = EntryState.WAITING
    outcome: Outcome | None = None
    offers: list[str] = field(default_factory=list)  # ids of the ringing offers
    tried: set[str] = field(default_factory=set)  # agents that missed it
    agent_id: str | None = None
    connected_at: float | None = None
    enter_position: int = 0
    announced: tuple[int, int] | None = None  # (position, estimate minutes) last said
    held_at: float | None = None
    wait_from: float | None = None  # a transfer into this queue: its own new wait starts

    @property
    def wait_start(self) -> float:
        """Where this queue's wait (service level, max_wait_s, widening) is counted from:
        the enter time, or the moment a transfer brought the caller here; ``enter_at``
        stays the caller's first enter time, for reporting and their place in line."""
        return self.enter_at if self.wait_from is None else self.wait_from
    # queued callbacks (callbacks.py): kind "call", "callback" or "abandoned"
    kind: str = "call"
    number: str = ""  # the number to call back
    attempts: int = 0  # customer dialled and not reached
    not_before: float | None = None  # not offered before this (retry wait, closed hours)
    deadline: float | None = None  # an abandoned call's callback closes (expired) then
    data: dict[str, str] = field(default_factory=dict)  # the caller's data for the agent
    only_agent: str = ""  # own agent: only they are offered the call until only_until
    only_until: float = 0.0

    @property
    def key(self) -> tuple[int, float, int]:
        """Order in the queue: higher priority first, then who came first."""
        return (-self.priority, self.enter_at, self.seq)

    def _set_state(self, new: EntryState, outcome: Outcome | None = None) -> EntryState:
        old = self.state
        if new not in _ENTRY_MOVES[old]:
            raise InvalidStateError(f"queue entry {self.call_id}: cannot go from {old.value} "
                                    f"to {new.value}")
        if (new is EntryState.ENDED) != (outcome is not None):
            raise InvalidStateError(f"queue entry {self.call_id}: an outcome goes with "
                                    "ENDED and only with ENDED")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("entry %s: %s -> %s", self.call_id, old.value, new.value)
        self.state = new
        self.outcome = outcome
        return old


class OfferState(enum.Enum):
    __hash__ = object.__hash__  # identity: Enum's own hash is slow on hot paths
    RINGING = "ringing"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"  # busy, declined, unreachable
    CANCELLED = "cancelled"  # caller gone, answered elsewhere, agent changed state


@dataclass(eq=False)
class Offer:
    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    started_at: float
    ring_until: float
    state: OfferState = OfferState.RINGING

    def _set_state(self, new: OfferState) -> OfferState:
        old = self.state
        if old is not OfferState.RINGING or new is OfferState.RINGING:
            raise InvalidStateError(f"offer {self.offer_id}: cannot go from {old.value} "
                                    f"to {new.value}")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("offer %s: %s -> %s", self.offer_id, old.value, new.value)
        self.state = new
        return old
