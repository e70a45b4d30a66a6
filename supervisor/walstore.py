"""A SQLite file in WAL mode shared by threads: the house pattern of the durable outboxes.

``synchronous=NORMAL`` in WAL mode survives a killed process; a power cut may lose the last
transactions, not corrupt the file. :meth:`WalStore.tx` is one ``BEGIN IMMEDIATE`` transaction
(rolled back on any exception); :meth:`WalStore.read` holds the same lock for consistent reads.
Used by :mod:`supervisor.notify.outbox`, :mod:`supervisor.ngsi.push` and :mod:`supervisor.alarms.store`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WalStore:
    """Thread-safe: every :meth:`tx` and :meth:`read` holds one lock."""

    def __init__(self, path: Path, schema: str, *, named_rows: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        if named_rows:  # rows as sqlite3.Row (by column name) rather than tuples
            self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db
