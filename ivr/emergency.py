"""Storm mode: an emergency message per queue, switched by ops while the stack runs.

``ivr emergency on QUEUE --prompt NAME [--expires 2h] [--outage-key 1] [--offer-callback]``
makes every caller entering QUEUE's queue node hear prompt NAME before the queue's greeting;
with an outage key they are offered "press 1 if your call is about the outage", which ends
the call with a report (the call event ``queue.outage_report``); with ``--offer-callback``
(a queue that takes callbacks) the message is followed by the queue node's callback offer,
whose key starts the callback dialogue once the caller is in line. ``ivr emergency off
QUEUE`` ends it; ``--expires`` ends it by itself. ``ivr emergency show`` lists what is on.

:class:`EmergencyBoard` is the pure part (``now`` passed in): what is on, and the queue-log
row of every switch (``EMERGENCYON``, ``EMERGENCYOFF``, ``EMERGENCYEXPIRED``). The
controller (``ivr/controller_acd.py``) keeps it in the store (``emergencies``), serves the
ops requests and tells every worker (``emergency.state``), which plays it
(``ivr/flow/emergency.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .acd.queue_log import QueueEvent, QueueLogRow

MAX_EXPIRY_S = 7 * 86400
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_PROMPT = re.compile(r"[A-Za-z0-9_\-]{1,64}")
STATE_MESSAGE = "emergency.state"  # controller -> worker: every notice that is on


class EmergencyError(Exception):
    """A switch that cannot be done; the message says why (nothing changed)."""


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45s``, ``1d`` -> seconds; EmergencyError if not one."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or m is None or not any(m.groups()):
        raise EmergencyError(f"expiry {text!r} is not a duration like 2h, 90m, 1h30m or 45s")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    seconds = float(d * 86400 + h * 3600 + mi * 60 + s)
    if not 0 < seconds <= MAX_EXPIRY_S:
        raise EmergencyError(f"expiry {text!r}: between 1 s and 7 days")
    return seconds


@dataclass(frozen=True)
class Emergency:
    """An emergency message on for ``queue``: ``prompt`` (a prompt name), optionally the
    ``outage_key`` that ends a call with an outage report; ``expires_at`` (epoch s) or None."""

    queue: str
    prompt: str
    set_at: float
    expires_at: float | None = None
    outage_key: str = ""
    offer_callback: bool = False

    def wire(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "expires_at": self.expires_at,
                "outage_key": self.outage_key, "offer_callback": self.offer_callback}


class EmergencyBoard:
    def __init__(self, queues: set[str], callback_queues: set[str] | None = None) -> None:
        self.queues = queues  # the ACD file's queues (a switch names one of them)
        self.callback_queues = callback_queues or set()  # those with callback:
        self.on: dict[str, Emergency] = {}

    def switch_on(self, queue: str, prompt: str, now: float, expires_s: float | None = None,
                  outage_key: str = "", offer_callback: bool = False
                  ) -> tuple[Emergency, QueueLogRow]:
        if queue not in self.queues:
            raise EmergencyError(f"no queue {queue!r} (queues: {', '.join(sorted(self.queues))})")
        if not _PROMPT.fullmatch(prompt):
            raise EmergencyError(f"prompt {prompt!r} is not a prompt name (letters, digits, _ -)")
        if outage_key and (len(outage_key) != 1 or outage_key not in "0123456789*#"):
            raise EmergencyError(f"outage key {outage_key!r} is not one DTMF key (0-9, *, #)")
        if offer_callback and queue not in self.callback_queues:
            raise EmergencyError(f"queue {queue!r} takes no callbacks (no callback: section in "
                                 "the ACD file): no callback to offer")
        notice = Emergency(queue, prompt, now, now + expires_s if expires_s else None,
                           outage_key, offer_callback)
        self.on[queue] = notice
        until = f"until {notice.expires_at:.0f}" if notice.expires_at else "until switched off"
        if offer_callback:
            until += ", callback offered"
        return notice, QueueLogRow(now, QueueEvent.EMERGENCYON, queue=queue, reason=prompt,
                                   code=outage_key, note=until)

    def switch_off(self, queue: str, now: float) -> QueueLogRow:
        if queue not in self.on:
            on = ", ".join(sorted(self.on)) or "none"
            raise EmergencyError(f"no emergency message is on for queue {queue!r} (on: {on})")
        notice = self.on.pop(queue)
        return QueueLogRow(now, QueueEvent.EMERGENCYOFF, queue=queue, reason=notice.prompt)

    def expire(self, now: float) -> list[QueueLogRow]:
        """Take off what has expired by ``now``: a row for each."""
        rows = []
        for queue, notice in sorted(self.on.items()):
            if notice.expires_at is not None and notice.expires_at <= now:
                del self.on[queue]
                rows.append(QueueLogRow(now, QueueEvent.EMERGENCYEXPIRED, queue=queue,
                                        reason=notice.prompt))
        return rows

    def next_expiry(self) -> float | None:
        times = [n.expires_at for n in self.on.values() if n.expires_at is not None]
        return min(times) if times else None

    def state(self) -> dict[str, dict[str, Any]]:
        """What workers are told: queue -> its notice."""
        return {q: n.wire() for q, n in sorted(self.on.items())}

    def show(self, now: float) -> list[dict[str, Any]]:
        return [{"queue": n.queue, "prompt": n.prompt, "set_at": n.set_at,
                 "expires_at": n.expires_at, "outage_key": n.outage_key,
                 "offer_callback": n.offer_callback,
                 "expires_in_s": None if n.expires_at is None else max(0.0, n.expires_at - now)}
                for n in sorted(self.on.values(), key=lambda n: n.queue)]
