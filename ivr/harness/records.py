"""The stack's own record of a harness call, for ``check`` steps: the call store (the same
one ``ivr call`` reads), found by the SIP Call-ID the harness sent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CallView:
    """A call's record (``cdr``: the ``ivr call`` fields) and its events (kind, data)."""

    cdr: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]

    def queues(self) -> set[str]:
        return {str(d["queue"]) for k, d in self.events
                if k.startswith("queue") and isinstance(d.get("queue"), str)}


class CallRecords:
    """Reads the call store at ``db_path`` (``paths.var_dir``/ivr.sqlite3)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def ended_call(self, sip_call_id: str, timeout_s: float = 10.0) -> CallView | None:
        """The call once its end is recorded (None if it never is within ``timeout_s``)."""
        from ..store import CallStore

        if not self.db_path.is_file():
            return None
        store = CallStore(self.db_path)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                call = store.find_by_sip_call_id(sip_call_id)
                if call is not None and call.ended_at is not None:
                    events = [(e.kind, e.data) for e in store.events(call.call_id)]
                    return CallView(dict(call.__dict__), events)
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
        finally:
            store._db.close()
