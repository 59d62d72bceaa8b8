"""The controller's ACD room: the ACD service (``ivr/acd_service.py``) and the agent desk
wired to the worker pool, the store and operators' requests.

The controller tells it which worker holds which call (``call_arrived`` / ``call_ended``),
when a worker dies (``worker_gone``), and hands it every ACD message (``on_message``) and
every ``cli`` connection (``serve_cli``). It sends typed messages back to the worker
holding a call through that worker's socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import acd_transfers, ops
from . import callback_messages as cm
from .acd import AcdConfig, AcdConfigError, AcdError, QueueEvent, QueueLogRow, load_acd
from .acd_service import AcdService, with_store_agents
from .agent_desk import Desk, start_of_day
from .config import Settings
from .controller_emergency import ControllerEmergency
from .emergency import EmergencyError
from .logs import log_event
from .messages import Message, from_wire, to_wire
from .protocol import ProtocolError, decode, encode
from .store import CallStore, StoreError

log = logging.getLogger("ivr.controller")


class AcdStartError(Exception):
    """The ACD cannot start (a bad ACD file); the message names the file and line."""


class Holder(Protocol):
    """A worker slot as this room sees it."""

    name: str
    writer: asyncio.StreamWriter | None


class ControllerAcd:
    def __init__(self, settings: Settings, store: CallStore,
                 log_rows: Callable[[list[QueueLogRow]], None]) -> None:
        self.settings = settings
        self.store = store
        self.last_refusal = ""
        self._call_slot: dict[str, Holder] = {}  # live call id -> the worker holding it
        self._free_worker: Callable[[], Holder | None] = lambda: None
        config = self.load_config()
        self.service = AcdService(config, send=self._send_to_call, log_rows=log_rows,
                                  agent_uri=self._agent_uri,
                                  on_agent_event=lambda a, e: self.desk.publish(a, e))
        self.service.acd.flow_nodes = acd_transfers.flow_nodes(settings.paths.flow)
        self.desk = Desk(self.service, store.agent_sip, survey_scores=store.survey_scores)
        self._log_rows = log_rows
        self.service.save_callback = self._save_callback
        self.service.acd.offer_callbacks = self.service.place_callback is not None
        self._restore(time.time())
        self._restore_callbacks()
        self.emergency = ControllerEmergency(store, set(config.queues),
                                             settings.paths.prompts_dir, log_rows, time.time(),
                                             _callback_queues(config))
        log_event("acd.ready", file=str(settings.paths.acd), queues=sorted(config.queues),
                  agents=len(config.agents))

    def _restore(self, now: float) -> None:
        """After a restart: today's figures from the queue log, agents signed in as they
        were, and a final row for each caller the log still has in a queue (their calls
        ended with the old controller's workers: ``replace_stale`` saw to that)."""
        service = self.service
        service.rows_today.extend(self.store.queue_log(since=start_of_day(now)))
        lost = [self._final_row(e, now) for e in self.store.open_queue_entries()]
        if lost:
            service.rows_today.extend(lost)
            self._log_rows(lost)
        self._restore_last_calls(service.rows_today)
        reasons = set(service.acd.config.not_ready_reasons)
        restored = 0
        for agent_id, was in sorted(self.store.agent_states().items()):
            if agent_id not in service.acd.agents or was.state == "logged_out":
                continue
            if was.state == "not_ready":
                service.request_state(agent_id, "not_ready",
                                      was.reason if was.reason in reasons else "")
            else:  # ready, or busy with a call that ended with the old controller
                service.request_state(agent_id, "ready")
            restored += 1
        if lost or restored:
            log_event("acd.restored", agents_signed_in=restored, queued_calls_lost=len(lost))

    def _restore_last_calls(self, rows: list[QueueLogRow]) -> None:
        """Each agent's last call of today, and whether it has its code: a wrap-up typed
        while the controller was down (the softphone keeps it) still finds its call."""
        agents = self.service.acd.agents
        coded = {r.call_id for r in rows if r.event is QueueEvent.WRAPUP}
        for row in rows:
            agent = agents.get(row.agent_id)
            if row.event is QueueEvent.CONNECT and agent is not None:
                agent.last_call_id, agent.last_call_queue = row.call_id, row.queue
                agent.coded_call_id = row.call_id if row.call_id in coded else None
    def _restore_callbacks(self) -> None:
        """The store's open callbacks back in line; own agents from today's log."""
        service = self.service
        callers: dict[str, str] = {}
        for row in service.rows_today:
            if row.event is QueueEvent.ENTERQUEUE and row.reason:
                callers[row.call_id] = row.reason
            elif row.event is QueueEvent.CONNECT and row.call_id in callers:
                service.acd.remember_agent(callers[row.call_id], row.agent_id)
        restored = service.restore_callbacks(self.store.open_callbacks())
        if restored:
            log_event("acd.callbacks_restored", callbacks=restored)

    def _save_callback(self, record: Any) -> None:
        try:
            self.store.save_callback(record)
        except StoreError as exc:
            log.error("callback %s not saved: %s", record.callback_id, exc)

    def _final_row(self, entry: Any, now: float) -> QueueLogRow:
        """The last row of a call the old controller left in a queue: EXITFAILURE if no
        agent had answered, else the end of its talk (as the caller's: nobody knows)."""
        connects = [r for r in self.store.queue_log(call_id=entry.call_id)
                    if r.event is QueueEvent.CONNECT and r.queue == entry.queue]
        if not connects:
            return QueueLogRow(now, QueueEvent.EXITFAILURE, call_id=entry.call_id,
                               queue=entry.queue, wait_s=now - entry.at,
                               priority=entry.priority, reason="restart")
        return QueueLogRow(now, QueueEvent.COMPLETECALLER, call_id=entry.call_id,
                           queue=entry.queue, agent_id=connects[-1].agent_id,
                           wait_s=connects[-1].wait_s, reason="restart")

    def load_config(self) -> AcdConfig:
        """The ACD file with the store's agents; AcdStartError names what is wrong."""
        return with_store_agents(self._load_file(), self.store.agents_sip())

    def _load_file(self) -> AcdConfig:
        path = self.settings.paths.acd
        try:
            return load_acd(path)
        except AcdConfigError as exc:
            raise AcdStartError(f"the ACD file is not valid:\n{exc}") from exc

    async def reload(self) -> bool:
        """Take the ACD file again (ivr reload), all or nothing."""
        try:
            config = await asyncio.to_thread(self._load_file)
            # the store's connection belongs to this thread
            self.service.reconfigure(with_store_agents(config, self.store.agents_sip()))
        except (AcdStartError, AcdError) as exc:
            log_event("acd.reload_refused", error=str(exc))
            self.last_refusal = str(exc)
            return False
        self.service.acd.flow_nodes = await asyncio.to_thread(
            acd_transfers.flow_nodes, self.settings.paths.flow)
        self.emergency.board.queues = set(self.service.acd.queues)
        self.emergency.board.callback_queues = _callback_queues(self.service.acd.config)
        log_event("acd.reload", file=str(self.settings.paths.acd),
                  queues=sorted(self.service.acd.queues), agents=len(self.service.acd.agents))
        return True

    def close(self) -> None:
        self.service.close()
        self.emergency.close()

    # ---- the pool's view ------------------------------------------------------------

    def call_arrived(self, call_id: str, slot: Holder) -> None:
        self._call_slot[call_id] = slot

    def call_ended(self, call_id: str) -> None:
        self._call_slot.pop(call_id, None)
        if call_id in self.service.calls:
            # ended without a word to the ACD: never leave an agent on it
            self.service.calls_lost([call_id], by="caller")

    def worker_gone(self, call_ids: set[str], slot: Holder | None = None) -> None:
        self.service.calls_lost(sorted(call_ids))
        for call_id in call_ids:
            self._call_slot.pop(call_id, None)
        if slot is not None:  # the callbacks it was placing: their agents are freed
            lost = sorted(c for c, s in self._call_slot.items() if s is slot)
            for call_id in lost:
                del self._call_slot[call_id]
            self.service.callbacks_lost(lost)

    # ---- queued callbacks: placed by a worker with a free slot ----------------------

    def enable_callbacks(self, free_worker: Callable[[], Holder | None]) -> None:
        """The pool can place callbacks: the ACD may offer them from now on."""
        self._free_worker = free_worker
        self.service.place_callback = self._place_callback
        self.service.dial_customer = self._dial_customer
        self.service.acd.offer_callbacks = True

    def _place_callback(self, action: Any) -> bool:
        for gone in [c for c in self._call_slot if c.startswith("cb-")
                     and c not in self.service.acd.entries]:
            del self._call_slot[gone]
        slot = self._free_worker()
        if slot is None or slot.writer is None:
            return False
        entry = self.service.acd.entries.get(action.call_id)
        self._call_slot[action.call_id] = slot
        return self._send_to_call(action.call_id, cm.CallbackOffer(
            action.call_id, action.offer_id, action.agent_id, self._agent_uri(action.agent_id),
            action.queue, action.number, round(action.wait_s, 3), action.ring_timeout_s,
            action.record, dict(entry.data) if entry is not None else {}))

    def _dial_customer(self, action: Any) -> bool:
        cfg = self.service.acd.queues[action.queue].cfg.callback
        template = (cfg.dial_uri if cfg is not None and cfg.dial_uri
                    else "sip:{number}@" + self.settings.agent_domain)
        return self._send_to_call(action.callback_id, cm.DialCustomer(
            action.callback_id, action.offer_id, template.replace("{number}", action.number),
            action.no_answer_s,
            cfg.voicemail_answer_s if cfg is not None else 0.0,
            cfg.voicemail_greeting_s if cfg is not None else 0.0))

    def _agent_uri(self, agent_id: str) -> str:
        s = self.settings
        return f"sip:{agent_id}@{s.agent_domain}"

    def _send_to_call(self, call_id: str, msg: Message) -> bool:
        slot = self._call_slot.get(call_id)
        if slot is None or slot.writer is None:
            return False
        try:
            slot.writer.write(to_wire(msg))
        except (ConnectionError, RuntimeError):
            return False
        return True

    def on_message(self, slot: Holder, raw: dict[str, Any]) -> None:
        try:
            msg = from_wire(raw)
        except ProtocolError as exc:
            log.error("%s sent a bad ACD message (ignored): %s", slot.name, exc)
            return
        if self._call_slot.get(msg.call_id) is not slot:
            log.error("%s sent %s for call %s, which is not its call (ignored)", slot.name,
                      msg.TYPE, msg.call_id)
            return
        try:
            self.service.on_message(msg)
        except AcdError as exc:
            log.error("ACD refused %s of call %s: %s", msg.TYPE, msg.call_id, exc)

    # ---- operators ------------------------------------------------------------------

    async def serve_cli(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            req = decode(line)
            reply: dict[str, Any] = {"id": req.get("id")}
            try:
                if req["type"] != "ops.request":
                    raise ops.OpsError(f"unexpected {req['type']!r}: ops.request expected")
                args = req.get("args")
                op = str(req.get("op"))
                data: dict[str, Any]
                if op.startswith("emergency."):
                    try:
                        data = self.emergency.request(op, args if isinstance(args, dict)
                                                      else {}, time.time())
                    except EmergencyError as exc:
                        raise ops.OpsError(str(exc)) from None
                elif req.get("op") == "acd.reload":
                    if not await self.reload():
                        raise ops.OpsError(f"refused: {self.last_refusal}")
                    data = {}
                else:
                    data = ops.handle(self.service, self.desk, str(req.get("op")),
                                      args if isinstance(args, dict) else {}, time.time())
                reply.update(ok=True, data=data)
            except ops.OpsError as exc:
                reply.update(ok=False, error=str(exc))
            except Exception as exc:  # a bug must not leave the operator without an answer
                log.exception("operator request %r failed", req.get("op"))
                reply.update(ok=False, error=f"internal error: {exc!r}")
            writer.write(encode("ops.reply", **reply))
            await writer.drain()


def _callback_queues(config: AcdConfig) -> set[str]:
    """The queues that take callbacks (storm mode may offer one)."""
    return {name for name, q in config.queues.items() if q.callback is not None}
