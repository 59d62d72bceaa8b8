"""The ACD (automatic call distributor) as a pure core: queues, agents, offers, strategies,
the queue log and the figures computed from it, transfers, consults and callbacks. See
docs/acd.md.

``Acd`` is the whole ACD (``full.py``): the queue core (``core.py``) with blind transfers and
segments (``transfer.py``), consults and conferences (``consult.py``) and callbacks
(``callbacks.py``) layered on it."""

from .config import AcdConfig, AcdConfigError, AcdIssue, QueueConfig, load_acd, parse_acd
from .consult import Consult, ConsultState
from .dialplan import DialPlan, DialPlanError
from .full import Acd
from .model import (
    Agent,
    AgentState,
    EntryState,
    InvalidStateError,
    Offer,
    OfferState,
    Outcome,
    QueueEntry,
)
from .queue_log import FINAL_EVENTS, QueueEvent, QueueLogRow
from .state import AcdError
from .strategies import STRATEGIES, Strategy, register
from .transfer import Target, TransferRefused, parse_target

__all__ = [
    "FINAL_EVENTS", "STRATEGIES", "Acd", "AcdConfig", "AcdConfigError", "AcdError", "AcdIssue",
    "Agent", "AgentState", "Consult", "ConsultState", "DialPlan", "DialPlanError", "EntryState",
    "InvalidStateError", "Offer", "OfferState", "Outcome", "QueueConfig", "QueueEntry",
    "QueueEvent", "QueueLogRow", "Strategy", "Target", "TransferRefused", "load_acd",
    "parse_acd", "parse_target", "register",
]
