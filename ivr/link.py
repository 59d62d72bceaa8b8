"""A worker's end of the controller protocol (``ivr/protocol.py``).

:class:`RemoteRecorder` has the same call-record methods as :class:`~ivr.store.CallStore`;
each becomes a ``store`` message the controller applies to the real store in order. Once the
link is lost they go to the worker's journal instead (``ivr/journal.py``), preceded by every
record the controller may not have written yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .journal import JournalWriter, UnconfirmedRecords
from .logs import log_event
from .messages import Message, to_wire
from .protocol import PROTOCOL_VERSION, ProtocolError, decode, encode
from .store import StoreOp

log = logging.getLogger("ivr.link")


class LinkLostError(Exception):
    pass


class ControllerLink:
    def __init__(self, socket_path: Path, hello: dict[str, Any]) -> None:
        self.socket_path = socket_path
        self._hello = hello
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.lost = False

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=1 << 20)
        except OSError as exc:
            raise LinkLostError(
                f"cannot reach the controller at {self.socket_path}: {exc}") from exc
        self.send("hello", protocol=PROTOCOL_VERSION, **self._hello)

    def send(self, msg_type: str, **fields: Any) -> None:
        if self._writer is None or self.lost:
            log.warning("controller link is down; dropped %s", msg_type)
            return
        try:
            self._writer.write(encode(msg_type, **fields))
        except (ConnectionError, RuntimeError) as exc:
            self.lost = True
            log.error("controller link lost while sending %s: %s", msg_type, exc)

    def send_message(self, msg: Message) -> None:
        """A typed message of a call in the ACD (``ivr/messages.py``)."""
        if self._writer is None or self.lost:
            log.warning("controller link is down; dropped %s of call %s", msg.TYPE, msg.call_id)
            return
        try:
            self._writer.write(to_wire(msg))
        except (ConnectionError, RuntimeError) as exc:
            self.lost = True
            log.error("controller link lost while sending %s: %s", msg.TYPE, exc)

    async def flush(self) -> None:
        if self._writer is not None and not self.lost:
            try:
                await self._writer.drain()
            except ConnectionError:
                self.lost = True

    async def serve(self, on_message: Callable[[dict[str, Any]], None]) -> None:
        """Read the controller's messages until the link closes."""
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    on_message(decode(line))
                except ProtocolError as exc:
                    log.error("bad message from the controller: %s", exc)
        except ConnectionError:
            pass
        self.lost = True

    async def close(self) -> None:
        if self._writer is not None:
            await self.flush()
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass


class RemoteRecorder:
    """The call-record interface of CallStore, sent to the controller; journaled once the
    link is lost (``journal``: where; None drops them, as before there were journals)."""

    def __init__(self, link: ControllerLink, journal: JournalWriter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._link = link
        self._journal = journal
        self._clock = clock
        self._unconfirmed = UnconfirmedRecords()
        self._journal_failed = False

    def _op(self, op: str, call_id: str, at: float, **args: Any) -> None:
        record: StoreOp = (op, call_id, at, args)
        if self._link.lost:
            self.link_lost()
            self._journal_write(record)
            return
        self._unconfirmed.sent(record, self._clock())
        self._link.send("store", op=op, call_id=call_id, at=at, args=args)
        if self._link.lost:  # that send found the link gone: the record is unconfirmed
            self.link_lost()

    def link_lost(self) -> None:
        """Open the journal with every record the controller may not have written."""
        journal = self._journal
        if journal is None or journal.is_open or self._journal_failed:
            return
        records = self._unconfirmed.all(self._clock())
        try:
            journal.open(records)
        except OSError as exc:
            self._journal_failed = True
            log.error("cannot open the call-record journal %s; records are lost: %s",
                      journal.path, exc)
            return
        log_event("worker.journal_opened", path=str(journal.path), records=len(records))

    def _journal_write(self, record: StoreOp) -> None:
        if self._journal is None or not self._journal.is_open:
            log.warning("controller link is down; dropped the %s of call %s", record[0],
                        record[1])
            return
        try:
            self._journal.write(record)
        except OSError as exc:
            log.error("cannot write the call-record journal %s: %s", self._journal.path, exc)

    def close(self) -> None:
        """After the link's own close: a link found lost at the last moment still journals."""
        if self._link.lost:
            self.link_lost()
        if self._journal is not None and self._journal.is_open:
            try:
                self._journal.close()
            except OSError as exc:
                log.error("cannot close the call-record journal %s: %s",
                          self._journal.path, exc)

    def call_arrived(self, call_id: str, at: float, *, sip_call_id: str, worker: str,
                     from_uri: str, to_uri: str, flow: str, flow_version: int) -> None:
        self._op("call_arrived", call_id, at, sip_call_id=sip_call_id, worker=worker,
                 from_uri=from_uri, to_uri=to_uri, flow=flow, flow_version=flow_version)

    def call_answered(self, call_id: str, at: float, *, codec: str, telephone_event: bool,
                      inband_dtmf: bool) -> None:
        self._op("call_answered", call_id, at, codec=codec, telephone_event=telephone_event,
                 inband_dtmf=inband_dtmf)

    def call_dtmf(self, call_id: str, at: float, *, digit: str, method: str, node: str) -> None:
        self._op("call_dtmf", call_id, at, digit=digit, method=method, node=node)

    def call_node(self, call_id: str, at: float, *, node: str, node_type: str) -> None:
        self._op("call_node", call_id, at, node=node, node_type=node_type)

    def call_menu_choice(self, call_id: str, at: float, *, node: str, key: str,
                         target: str) -> None:
        self._op("call_menu_choice", call_id, at, node=node, key=key, target=target)

    def call_event(self, call_id: str, at: float, kind: str, data: dict[str, Any]) -> None:
        self._op("call_event", call_id, at, kind=kind, data=data)

    def call_ended(self, call_id: str, at: float, *, reason: str, hangup_by: str,
                   sip_code: int | None, sip_reason: str | None) -> None:
        self._op("call_ended", call_id, at, reason=reason, hangup_by=hangup_by,
                 sip_code=sip_code, sip_reason=sip_reason)
