"""Queue and agent figures, computed from queue-log rows only (``queue_log.py``): pure
functions, the rows in the order they were appended, ``now`` passed in. Definitions (with
CALL-CENTER.md's formulas) are in docs/acd.md, "Metrics".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .queue_log import AGENT_STATE_EVENTS, FINAL_EVENTS, QueueEvent, QueueLogRow

_COMPLETE = (QueueEvent.COMPLETECALLER, QueueEvent.COMPLETEAGENT)
# an agent's part of a call ends with one of these rows, which carries their talk_s
_TRANSFERS = (QueueEvent.BLINDTRANSFER, QueueEvent.ATTENDEDTRANSFER)
_SEGMENT_ENDS = _COMPLETE + _TRANSFERS


def waiting_calls(rows: Iterable[QueueLogRow], queue: str) -> dict[str, float]:
    """Callers waiting in ``queue`` now (entered, neither connected nor gone): call id ->
    enter time."""
    waiting: dict[str, float] = {}
    for r in rows:
        if r.queue != queue or not r.call_id:
            continue
        if r.event is QueueEvent.ENTERQUEUE:
            waiting[r.call_id] = r.at
        elif r.event is QueueEvent.CONNECT or r.event in FINAL_EVENTS:
            waiting.pop(r.call_id, None)
    return waiting


def calls_waiting(rows: Iterable[QueueLogRow], queue: str) -> int:
    return len(waiting_calls(rows, queue))


def longest_wait_s(rows: Iterable[QueueLogRow], queue: str, now: float) -> float:
    waiting = waiting_calls(rows, queue)
    return now - min(waiting.values()) if waiting else 0.0


def _wrapups(rows: Iterable[QueueLogRow], now: float) -> list[tuple[str, str, float]]:
    """(agent, queue, seconds) of every after-call-work spell, an open one up to ``now``."""
    open_: dict[str, tuple[str, float]] = {}
    out: list[tuple[str, str, float]] = []
    for r in rows:
        if r.event not in AGENT_STATE_EVENTS:
            continue
        if r.agent_id in open_:
            queue, start = open_.pop(r.agent_id)
            out.append((r.agent_id, queue, r.at - start))
        if r.new_state == "wrap_up":
            open_[r.agent_id] = (r.queue, r.at)
    out += [(agent, queue, now - start) for agent, (queue, start) in open_.items()]
    return out


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    calls_waiting: int
    longest_wait_s: float
    offered: int  # ENTERQUEUE: calls that reached the queue
    answered: int
    answered_in_service_level: int
    abandoned: int  # after short_abandon_s
    short_abandons: int  # kept apart from everything below
    timed_out: int
    left_with_key: int
    blocked: int  # FULL and JOINEMPTY: never entered
    service_level: float | None  # answered within service_level_s / (offered - short)
    asa_s: float | None  # total queue time of answered calls / answered
    abandon_rate: float | None  # abandoned / (offered - short)
    aht_s: float | None  # (talk + after-call work) / handled
    avg_talk_s: float | None
    avg_acw_s: float | None
    avg_hold_s: float | None
    transferred: int = 0  # BLINDTRANSFER + ATTENDEDTRANSFER: agents who passed a call on


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def queue_figures(rows: Sequence[QueueLogRow], queue: str, now: float, *,
                  service_level_s: float = 20.0, short_abandon_s: float = 20.0,
                  since: float | None = None) -> QueueFigures:
    """Every figure of ``queue`` for the rows at or after ``since`` (e.g. today's
    midnight); the waiting figures always look at all rows."""
    window = [r for r in rows if r.queue == queue and (since is None or r.at >= since)]
    count: dict[QueueEvent, int] = defaultdict(int)
    answered_in_sl = short = 0
    wait_answered = talk = hold = 0.0
    holds = 0
    for r in window:
        if r.event is QueueEvent.CONNECT and r.reason == "transfer":
            continue  # a transferred call answered again: one answer per call and queue
        count[r.event] += 1
        if r.event is QueueEvent.CONNECT:
            wait_answered += r.wait_s or 0.0
            answered_in_sl += (r.wait_s or 0.0) <= service_level_s
        elif r.event is QueueEvent.ABANDON and (r.wait_s or 0.0) < short_abandon_s:
            short += 1
        elif r.event in _SEGMENT_ENDS:
            talk += r.talk_s or 0.0
        elif r.event is QueueEvent.UNHOLD:
            hold += r.hold_s or 0.0
            holds += 1
    acw = [s for _, q, s in _wrapups(window, now) if q == queue]
    # handled: agents' parts of calls (a call passed between two agents counts twice,
    # as both talked and both wrap up)
    handled = sum(count[e] for e in _SEGMENT_ENDS)
    answered = count[QueueEvent.CONNECT]
    offered = count[QueueEvent.ENTERQUEUE]
    abandoned = count[QueueEvent.ABANDON] - short
    waiting = waiting_calls(rows, queue)
    return QueueFigures(
        queue=queue,
        calls_waiting=len(waiting),
        longest_wait_s=now - min(waiting.values()) if waiting else 0.0,
        offered=offered,
        answered=answered,
        answered_in_service_level=answered_in_sl,
        abandoned=abandoned,
        short_abandons=short,
        timed_out=count[QueueEvent.EXITWITHTIMEOUT],
        left_with_key=count[QueueEvent.EXITWITHKEY],
        blocked=count[QueueEvent.FULL] + count[QueueEvent.JOINEMPTY],
        service_level=_ratio(answered_in_sl, offered - short),
        asa_s=_ratio(wait_answered, answered),
        abandon_rate=_ratio(abandoned, offered - short),
        aht_s=_ratio(talk + sum(acw), handled),
        avg_talk_s=_ratio(talk, handled),
        avg_acw_s=_ratio(sum(acw), len(acw)),
        avg_hold_s=_ratio(hold, holds),
        transferred=count[QueueEvent.BLINDTRANSFER] + count[QueueEvent.ATTENDEDTRANSFER],
    )


@dataclass(frozen=True)
class AgentFigures:
    agent_id: str
    calls_handled: int
    calls_last_hour: int
    talk_s: float
    state: str  # now
    time_in_state_s: dict[str, float] = field(default_factory=dict)
    acw_s: float = 0.0  # after-call work, an open spell up to ``now``
    aht_s: float | None = None  # (talk + after-call work) / handled; None before a call


def agent_figures(rows: Sequence[QueueLogRow], agent_id: str, now: float, *,
                  since: float | None = None) -> AgentFigures:
    """An agent's figures from ``since``: calls handled (and in the hour before ``now``),
    talk time, after-call work, AHT, seconds spent in each state (the current one up to
    ``now``)."""
    mine = [r for r in rows if r.agent_id == agent_id and (since is None or r.at >= since)]
    handled = [r for r in mine if r.event in _SEGMENT_ENDS]
    in_state: dict[str, float] = defaultdict(float)
    state, since_at = "logged_out", None
    for r in mine:
        if r.event not in AGENT_STATE_EVENTS:
            continue
        if since_at is not None:
            in_state[state] += r.at - since_at
        state, since_at = r.new_state, r.at
    if since_at is not None:
        in_state[state] += now - since_at
    talk_s = sum(r.talk_s or 0.0 for r in handled)
    acw_s = sum(spell for _, _, spell in _wrapups(mine, now))
    return AgentFigures(
        agent_id=agent_id,
        calls_handled=len(handled),
        calls_last_hour=sum(r.at >= now - 3600 for r in handled),
        talk_s=talk_s,
        state=state,
        time_in_state_s=dict(in_state),
        acw_s=acw_s,
        aht_s=_ratio(talk_s + acw_s, len(handled)),
    )


@dataclass(frozen=True)
class SurveyFigures:
    count: int
    mean: float | None  # None before the first score


def agent_survey_scores(rows: Sequence[QueueLogRow], agent_id: str,
                        scores: Iterable[tuple[str, int]]) -> SurveyFigures:
    """The survey scores (``(call id, score)``, asked after the agent) of the calls
    ``agent_id`` handled in ``rows``: those whose part of the call ended with the caller
    (COMPLETECALLER / COMPLETEAGENT), the agent the caller last talked to. An agent who
    passed the call on is not rated for it."""
    mine = {r.call_id for r in rows if r.agent_id == agent_id and r.event in _COMPLETE}
    got = [score for call_id, score in scores if call_id in mine]
    return SurveyFigures(len(got), round(sum(got) / len(got), 2) if got else None)
