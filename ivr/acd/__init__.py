"""The ACD (automatic call distributor) as a pure core: queues, agents, offers, strategies,
the queue log and the figures computed from it. See docs/acd.md."""

from .callbacks import Acd
from .config import AcdConfig, AcdConfigError, AcdIssue, QueueConfig, load_acd, parse_acd
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

__all__ = [
    "FINAL_EVENTS", "STRATEGIES", "Acd", "AcdConfig", "AcdConfigError", "AcdError", "AcdIssue",
    "Agent", "AgentState", "EntryState", "InvalidStateError", "Offer", "OfferState", "Outcome",
    "QueueConfig", "QueueEntry", "QueueEvent", "QueueLogRow", "Strategy", "load_acd",
    "parse_acd", "register",
]
