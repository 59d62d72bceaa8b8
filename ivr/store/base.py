"""The connection and its transactions, shared by the store's parts (``calls.py``,
``agents.py``, ``acd.py``): one database opened through an adapter (``sql.Adapter``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .sql import Adapter


class StoreBase:
    path: Path
    _db: Any  # the adapter's DB-API connection
    _adapter: Adapter
    _in_batch: bool

    def close(self) -> None:
        self._db.close()

    @property
    def _error(self) -> type[Exception]:
        return self._adapter.error

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write: its own transaction, or in a batch its own savepoint (a failed write
        undoes only itself)."""
        if self._in_batch:
            self._db.execute("SAVEPOINT one_write")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK TO SAVEPOINT one_write")
                self._db.execute("RELEASE SAVEPOINT one_write")
                raise
            else:
                self._db.execute("RELEASE SAVEPOINT one_write")
            return
        self._db.execute(self._adapter.begin)
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
