"""Queued callbacks and storm mode's emergency messages in the store (schema 5).

One ``callbacks`` row per callback, updated as it goes (``ivr/acd/callbacks.py`` sends a
:class:`~ivr.acd.events.CallbackRecord` at every change). The open ones (``state`` not
``closed``) are what a restarted controller puts back in line, in their order (enter time,
then id). Every step is also in the queue log; this table holds the callback's latest state
and its outcome. ``emergencies`` holds one row per queue with an emergency message on
(``ivr/emergency.py``).
"""

from __future__ import annotations

import json
from typing import Any

from ..acd.events import CallbackRecord
from ..emergency import Emergency
from . import sql
from .base import StoreBase
from .records import StoreError

CALLBACK_STATES = ("waiting", "offered", "dialing", "connected", "closed")


def callback_params(r: object) -> tuple[Any, ...]:
    """The row's values in column order (``sql.CALLBACK_COLUMNS``); ValueError names a
    bad field."""
    if not isinstance(r, CallbackRecord):
        raise ValueError(f"{r!r} is not a CallbackRecord")
    if r.state not in CALLBACK_STATES:
        raise ValueError(f"callback {r.callback_id}: state {r.state!r} is not one of "
                         f"{', '.join(CALLBACK_STATES)}")
    if not r.number or not r.queue:
        raise ValueError(f"callback {r.callback_id}: no number or no queue")
    return (r.callback_id, r.queue, r.number, r.kind, r.call_id, r.priority, r.enter_at,
            r.state, r.attempts, r.not_before, r.deadline, r.outcome,
            json.dumps(dict(r.data), sort_keys=True), r.updated_at)


def _record(row: tuple[Any, ...]) -> CallbackRecord:
    (callback_id, queue, number, kind, call_id, priority, enter_at, state, attempts,
     not_before, deadline, outcome, data, updated_at) = row
    return CallbackRecord(callback_id, queue, number, kind, call_id, priority, enter_at,
                          state, attempts, not_before, deadline, outcome,
                          tuple(sorted(json.loads(data).items())), updated_at)


class CallbackRows(StoreBase):
    def save_callback(self, record: CallbackRecord) -> None:
        """Insert the callback, or replace its row. StoreError names what is wrong."""
        try:
            params = callback_params(record)
        except ValueError as exc:
            raise StoreError(f"{self.path}: cannot save a callback: {exc}") from exc
        try:
            with self._tx() as db:
                cur = db.execute(sql.UPDATE_CALLBACK, (*params[1:], params[0]))
                if cur.rowcount == 0:
                    db.execute(sql.INSERT_CALLBACK, params)
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot save callback {record.callback_id}: "
                             f"{exc}") from exc

    def open_callbacks(self) -> list[CallbackRecord]:
        """The callbacks not closed, in line order (enter time, then id)."""
        return [_record(r) for r in self._db.execute(sql.OPEN_CALLBACKS)]

    def callback(self, callback_id: str) -> CallbackRecord | None:
        row = self._db.execute(sql.GET_CALLBACK, (callback_id,)).fetchone()
        return _record(row) if row else None

    def save_emergency(self, queue: str, notice: Emergency | None) -> None:
        """The emergency message on for ``queue`` (None: none any more)."""
        try:
            with self._tx() as db:
                db.execute(sql.DELETE_EMERGENCY, (queue,))
                if notice is not None:
                    db.execute(sql.INSERT_EMERGENCY, (notice.queue, notice.prompt,
                                                      notice.set_at, notice.expires_at,
                                                      notice.outage_key,
                                                      int(notice.offer_callback)))
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot save the emergency message of "
                             f"{queue}: {exc}") from exc

    def emergencies(self) -> list[Emergency]:
        """The emergency messages on (an expired one included: the caller expires it)."""
        return [Emergency(queue, prompt, set_at, expires_at, outage_key, bool(offer_callback))
                for queue, prompt, set_at, expires_at, outage_key, offer_callback
                in self._db.execute(sql.EMERGENCIES)]
