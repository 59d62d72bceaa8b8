"""What the ACD is told (events) and what it asks for (actions): frozen dataclasses named for
what happened or what is to be done. ``Acd.handle(event, now)`` takes one event and returns
a list of actions; ``Acd.tick(now)`` returns the actions of the timers due by ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .queue_log import QueueLogRow
from .transfer_events import TransferAction, TransferEvent

# ---- events (into the ACD) -------------------------------------------------------------


@dataclass(frozen=True)
class CallQueued:
    """A flow's queue node hands the call to ``queue``."""

    call_id: str
    queue: str
    priority: int = 0
    skills: tuple[str, ...] = ()
    caller: str = ""


@dataclass(frozen=True)
class CallerHungUp:
    """The caller's leg ended (waiting, while an agent's phone rang, or talking)."""

    call_id: str


@dataclass(frozen=True)
class CallLost:
    """The stack lost the call (its worker died): as a hang-up for the agent, but a caller
    still waiting is not counted as an abandon (EXITFAILURE)."""

    call_id: str


@dataclass(frozen=True)
class CallerLeftWithKey:
    """The caller pressed a key that leaves the queue (the flow goes on)."""

    call_id: str
    key: str


@dataclass(frozen=True)
class AgentHungUp:
    """The agent's leg of a connected call ended; the caller goes on in the flow."""

    call_id: str


@dataclass(frozen=True)
class OfferAnswered:
    offer_id: str


@dataclass(frozen=True)
class OfferFailed:
    """The agent's phone did not take the call: ``no_answer`` counts as a miss (autopause);
    ``rejected`` (busy, declined, not registered) too; ``error`` (the worker had no leg to
    ring it with) is no miss while other phones ring for the call (ring-all), else one."""

    offer_id: str
    reason: str = "no_answer"


@dataclass(frozen=True)
class AgentStateRequested:
    """An agent (API, CLI) asks for ``state``: ``ready``, ``not_ready`` or ``logged_out``."""

    agent_id: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class WrapUpCoded:
    """The agent reports the disposition code of their last call."""

    agent_id: str
    code: str
    note: str = ""


@dataclass(frozen=True)
class CallHeld:
    call_id: str


@dataclass(frozen=True)
class CallResumed:
    call_id: str


@dataclass(frozen=True)
class CallbackRequested:
    """A waiting caller asks to be called back at ``number`` (keeping their place) and
    will hang up. ``data``: what the agent is shown (the IVR's variables)."""

    call_id: str
    number: str
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CallbackRestored:
    """After a restart: a callback the store still holds open goes back in line."""

    record: CallbackRecord


@dataclass(frozen=True)
class CustomerAnswered:
    """A callback's customer answered the call the stack placed."""

    callback_id: str


@dataclass(frozen=True)
class CustomerNotReached:
    """A callback's customer was not reached: ``no_answer``, ``busy``, ``voicemail``
    (answered sooner than a person would, or no answer within no_answer_s) or
    ``failed``."""

    callback_id: str
    outcome: str


@dataclass(frozen=True)
class CallbackCancelled:
    """Ops (or the customer) withdraw a waiting callback."""

    callback_id: str
    reason: str = "cancelled"


Event = (CallQueued | CallerHungUp | CallLost | CallerLeftWithKey | AgentHungUp | OfferAnswered
         | OfferFailed | AgentStateRequested | WrapUpCoded | CallHeld | CallResumed
         | TransferEvent | CallbackRequested | CallbackRestored | CustomerAnswered
         | CustomerNotReached | CallbackCancelled)

# ---- actions (out of the ACD) ----------------------------------------------------------


@dataclass(frozen=True)
class OfferAgent:
    """Ring ``agent_id`` for ``call_id`` (the worker holding the caller places the leg)."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    wait_s: float
    ring_timeout_s: float
    record: bool = False
    kind: str = "call"  # "callback" or "abandoned": the agent is told; no caller waits
    number: str = ""  # a callback's number to dial


@dataclass(frozen=True)
class CancelOffer:
    """Stop ringing (CANCEL), or hang up a leg answered too late (BYE)."""

    offer_id: str
    call_id: str
    agent_id: str
    reason: str  # no-answer, answered-elsewhere, caller-gone, agent-state


@dataclass(frozen=True)
class CallConnected:
    """An agent answered: the worker bridges the two legs."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str


@dataclass(frozen=True)
class RequeueCall:
    """The call is back waiting (music on hold again), at its old place."""

    call_id: str
    queue: str
    position: int


@dataclass(frozen=True)
class Overflow:
    """The call leaves the queue for ``target`` (a flow target; None: the queue node's own
    ``on_unavailable``). ``reason``: timeout, full, no-agents."""

    call_id: str
    queue: str
    reason: str
    target: str | None


@dataclass(frozen=True)
class AnnouncePosition:
    call_id: str
    queue: str
    position: int
    estimated_wait_s: int


@dataclass(frozen=True)
class AgentStateChanged:
    agent_id: str
    old: str
    new: str
    reason: str = ""


@dataclass(frozen=True)
class LogQueueEvent:
    """Append ``row`` to the queue log."""

    row: QueueLogRow


@dataclass(frozen=True)
class CallbackRecord:
    """A callback as the store keeps it (``callbacks`` table): enough to put it back in
    line after a restart. ``state``: waiting, dialing, connected or closed."""

    callback_id: str
    queue: str
    number: str
    kind: str  # callback (the caller asked) or abandoned
    call_id: str  # the call it came from
    priority: int
    enter_at: float  # its place in line: the caller's enter time
    state: str
    attempts: int = 0
    not_before: float | None = None
    deadline: float | None = None
    outcome: str = ""
    data: tuple[tuple[str, str], ...] = ()
    updated_at: float = 0.0


@dataclass(frozen=True)
class SaveCallback:
    """Write ``record`` to the store (insert, or update the row of its id)."""

    record: CallbackRecord


@dataclass(frozen=True)
class DialCustomer:
    """The agent took callback ``callback_id``: dial ``number`` and bridge it to them;
    not answered within ``no_answer_s``: CustomerNotReached(no_answer)."""

    offer_id: str
    callback_id: str
    agent_id: str
    queue: str
    number: str
    no_answer_s: float
    attempt: int


@dataclass(frozen=True)
class CallbackTaken:
    """Callback ``callback_id`` took the caller's place; the caller hears when to expect
    the call and hangs up."""

    call_id: str
    callback_id: str
    queue: str
    position: int
    estimated_wait_s: int
    updated: bool  # an open callback for the same number was updated instead


Action = (OfferAgent | CancelOffer | CallConnected | RequeueCall | Overflow | AnnouncePosition
          | AgentStateChanged | LogQueueEvent | TransferAction | SaveCallback | DialCustomer
          | CallbackTaken)
