"""The ACD's tables (schema 4): the queue log and the recordings of agent segments.

``queue_log`` holds one row per :class:`~ivr.acd.queue_log.QueueLogRow`, every field, the
event as its name, in the order appended (``id``). It is append-only: figures and the
restart's view of agents and queues are read from it, never kept apart. ``recordings`` is
filled from the ``recording`` call events the workers send (``call_event``; data ``path``,
``duration_s``, and for an agent segment ``agent_id``, ``queue``, ``channels``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..acd.queue_log import QueueEvent, QueueLogRow
from . import sql
from .base import StoreBase
from .records import AgentStateRecord, QueueEntryRecord, Recording, StoreError


def queue_log_params(row: object) -> tuple[Any, ...]:
    """The INSERT's parameters for one row; ValueError names what is wrong."""
    if not isinstance(row, QueueLogRow):
        raise ValueError(f"{row!r} is not a QueueLogRow")
    if not isinstance(row.event, QueueEvent):
        raise ValueError(f"queue-log event {row.event!r} is not a QueueEvent")
    return (row.at, row.event.value, *row[2:])


def recording_params(call_id: str, at: float, data: dict[str, Any]) -> tuple[Any, ...]:
    """A ``recording`` call event as a recordings row; ValueError names a bad field. The
    event is sent when the recording stops: it started ``duration_s`` before ``at``
    (unless the data says ``started_at``)."""
    path, duration_s = data.get("path"), data.get("duration_s", 0.0)
    agent_id, queue = data.get("agent_id") or "", data.get("queue") or ""
    channels = data.get("channels", 1)
    if not isinstance(path, str) or not path:
        raise ValueError(f"recording of call {call_id}: no path in {data!r}")
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise ValueError(f"recording of call {call_id}: duration_s {duration_s!r} is not "
                         "a number")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"recording of call {call_id}: channels {channels!r} is not a "
                         "positive integer")
    if not isinstance(agent_id, str) or not isinstance(queue, str):
        raise ValueError(f"recording of call {call_id}: agent_id and queue must be text")
    started_at = data.get("started_at", at - duration_s)
    return (call_id, agent_id, queue, path, float(started_at), float(duration_s), channels)


def backfill_recordings(db: Any) -> None:
    """Schema 3 -> 4: the recordings already linked to calls (voicemail messages, as
    ``recording`` call events) get their rows."""
    for call_id, at, data in db.execute(sql.EVENTS_OF_KIND, ("recording",)).fetchall():
        try:
            params = recording_params(call_id, at, json.loads(data))
        except ValueError:
            continue  # an event without a file (nothing to link)
        db.execute(sql.INSERT_RECORDING, params)


def _row(r: tuple[Any, ...]) -> QueueLogRow:
    return QueueLogRow(r[0], QueueEvent(r[1]), *r[2:])


class AcdRows(StoreBase):
    def append_queue_log(self, rows: Iterable[QueueLogRow]) -> None:
        """Append rows in order, all or none. StoreError names a bad row or the failure."""
        try:
            params = [queue_log_params(r) for r in rows]
        except ValueError as exc:
            raise StoreError(f"{self.path}: cannot append to the queue log: {exc}") from exc
        if not params:
            return
        try:
            with self._tx() as db:
                db.executemany(sql.INSERT_QUEUE_LOG, params)
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot append {len(params)} rows to the queue "
                             f"log: {exc}") from exc

    def queue_log(self, since: float | None = None, queue: str | None = None,
                  agent_id: str | None = None, call_id: str | None = None
                  ) -> list[QueueLogRow]:
        """The rows in the order appended; only those at or after ``since`` and of the
        given queue, agent and call (each filter when not None)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("at >= ?", since), ("queue = ?", queue),
                              ("agent_id = ?", agent_id), ("call_id = ?", call_id)):
            if value is not None:
                where.append(column)
                params.append(value)
        text = sql.QUEUE_LOG + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.execute(text + sql.QUEUE_LOG_ORDER, params).fetchall()
        try:
            return [_row(r) for r in rows]
        except ValueError as exc:
            raise StoreError(f"{self.path}: the queue log holds an event this program does "
                             f"not know ({exc}); upgrade the program") from exc

    def agent_states(self) -> dict[str, AgentStateRecord]:
        """Each agent's state by its latest agent-state row (AGENTLOGIN, AGENTLOGOFF,
        PAUSE, UNPAUSE, AGENTSTATE): agent id -> (state, reason, at)."""
        return {agent_id: AgentStateRecord(state, reason, at)
                for agent_id, state, reason, at in self._db.execute(sql.AGENT_STATES)}

    def open_queue_entries(self) -> list[QueueEntryRecord]:
        """The callers in a queue by the log: an ENTERQUEUE and no final row (FINAL_EVENTS)
        of the same call and queue after it, in enter order."""
        return [QueueEntryRecord(call_id, queue, at, priority or 0)
                for call_id, queue, at, priority in self._db.execute(sql.OPEN_QUEUE_ENTRIES)]

    def recordings(self, call_id: str) -> list[Recording]:
        """The call's recordings in the order they were linked."""
        return [Recording(*r) for r in self._db.execute(sql.RECORDINGS, (call_id,))]
