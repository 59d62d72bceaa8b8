"""Storm mode in the controller: the emergency board (``ivr/emergency.py``) kept in the
store, switched by operators (``ivr emergency on|off|show`` through the ops socket), expired
by a timer, each switch a queue-log row, and every worker told the notices that are on
(``emergency.state``) at each change and when it says hello.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .acd import QueueLogRow
from .emergency import STATE_MESSAGE, EmergencyBoard, EmergencyError, parse_duration
from .logs import log_event
from .protocol import encode
from .store import CallStore, StoreError

log = logging.getLogger("ivr.controller")


def prompt_names(prompts_dir: Path) -> dict[str, set[str]]:
    """Each shipped prompt set's names (from its manifest.yaml)."""
    out: dict[str, set[str]] = {}
    for manifest in sorted(prompts_dir.glob("*/manifest.yaml")):
        try:
            data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            log.warning("%s: unreadable (%s)", manifest, exc)
            continue
        out[manifest.parent.name] = set((data.get("prompts") or {}).keys())
    return out


class ControllerEmergency:
    def __init__(self, store: CallStore, queues: set[str], prompts_dir: Path,
                 log_rows: Callable[[list[QueueLogRow]], None], now: float,
                 callback_queues: set[str] | None = None) -> None:
        self.store = store
        self.board = EmergencyBoard(queues, callback_queues)
        self.prompts_dir = prompts_dir
        self._log_rows = log_rows
        self.broadcast: Callable[[bytes], None] = lambda line: None  # set by the controller
        self._timer: asyncio.TimerHandle | None = None
        for notice in store.emergencies():
            self.board.on[notice.queue] = notice
        self._expire(now)

    def state_line(self) -> bytes:
        return encode(STATE_MESSAGE, emergencies=self.board.state())

    def request(self, op: str, args: dict[str, Any], now: float) -> dict[str, Any]:
        """An operator's switch; EmergencyError says why not (nothing changed)."""
        if op == "emergency.on":
            queue, prompt = str(args.get("queue", "")), str(args.get("prompt", ""))
            expires = str(args.get("expires") or "")
            key = str(args.get("outage_key") or "")
            expires_s = parse_duration(expires) if expires else None
            self._check_prompt(prompt, key)
            offer_callback = args.get("offer_callback", False)
            if not isinstance(offer_callback, bool):
                raise EmergencyError(f"offer_callback {offer_callback!r} is not true or false")
            notice, row = self.board.switch_on(queue, prompt, now, expires_s, key,
                                               offer_callback)
            self._save(queue, notice)
            self._switched([row])
            log_event("emergency.on", queue=queue, prompt=prompt, expires_at=notice.expires_at,
                      outage_key=key, offer_callback=offer_callback)
        elif op == "emergency.off":
            queue = str(args.get("queue", ""))
            row = self.board.switch_off(queue, now)
            self._save(queue, None)
            self._switched([row])
            log_event("emergency.off", queue=queue)
        elif op != "emergency.show":
            raise EmergencyError(f"unknown request {op!r}")
        return {"emergencies": self.board.show(now)}

    def _check_prompt(self, prompt: str, outage_key: str) -> None:
        sets = prompt_names(self.prompts_dir)
        needed = [prompt, *(["outage_offer", "outage_thanks"] if outage_key else [])]
        for name, names in sets.items():
            missing = [p for p in needed if p not in names]
            if missing:
                raise EmergencyError(f"prompt {missing[0]!r} is not in prompt set {name!r}: "
                                     "add it to every set (prompts/<set>/manifest.yaml or "
                                     "`ivr prompts load`) first")

    def _save(self, queue: str, notice: Any) -> None:
        try:
            self.store.save_emergency(queue, notice)
        except StoreError as exc:  # on for now; lost at a restart: say so
            log.error("emergency message of %s not saved: %s", queue, exc)

    def _switched(self, rows: list[QueueLogRow]) -> None:
        self._log_rows(rows)
        self.broadcast(self.state_line())
        self._arm()

    def _expire(self, now: float) -> None:
        rows = self.board.expire(now)
        for row in rows:
            self._save(row.queue, None)
            log_event("emergency.expired", queue=row.queue)
        if rows:
            self._switched(rows)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.board.next_expiry()
        if when is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, when - time.time()) + 0.01,
                                      lambda: self._expire(time.time()))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
