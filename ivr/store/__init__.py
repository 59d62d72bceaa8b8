"""The call store: calls, their events, refused calls, agents' credentials, the queue log
and recordings (docs/store.md).

::

    records.py  what the store takes and gives back (no database here)
    sql.py      the statements any SQL database takes; the adapter seam (Adapter)
    sqlite.py   the SQLite adapter: file, mode, PRAGMAs, DDL with SQLite's types
    base.py     the connection's transactions and savepoints
    calls.py    CallStore: calls and call events, batches, journal replay, orphans
    agents.py   agents' SIP credentials (agents_sip)
    acd.py      the queue log and recordings
    writer.py   StoreWriter: the controller's writes from one thread, in order
"""

from ..agent_credentials import AgentError, AgentSip
from .calls import CallStore
from .records import (
    BLOCK_REASONS,
    RECORDER_METHODS,
    AgentStateRecord,
    BatchItem,
    BlockedCall,
    CallEventRecord,
    CallRecord,
    CallRecorder,
    QueueEntryRecord,
    Recording,
    ReplayOutcome,
    StoreError,
    StoreOp,
)
from .sql import SCHEMA_VERSION, Adapter
from .sqlite import STORE_FILE_MODE, SqliteAdapter
from .writer import StoreWriter

__all__ = [
    "BLOCK_REASONS", "RECORDER_METHODS", "SCHEMA_VERSION", "STORE_FILE_MODE", "Adapter",
    "AgentError", "AgentSip", "AgentStateRecord", "BatchItem", "BlockedCall",
    "CallEventRecord", "CallRecord", "CallRecorder", "CallStore", "QueueEntryRecord",
    "Recording", "ReplayOutcome", "SqliteAdapter", "StoreError", "StoreOp", "StoreWriter",
]
