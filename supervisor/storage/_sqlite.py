"""The embedded store of the demo: points in a SQLite file (no service to install).

Each batch of line protocol is parsed and stored in one transaction, one row per field:
``points(measurement, series, device, zone, field, ts, value)`` where ``series`` is the JSON of the
sorted tags. The primary key (measurement, series, field, ts) gives InfluxDB's overwrite semantics:
a retried or replayed line replaces instead of duplicating. Booleans are stored as 0/1.
The database runs in WAL mode so that readers (the demo summary) do not block the writer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from drivers._contract import Value

from ._errors import PartialWriteError, StorageError
from .lineprotocol import LineProtocolError, parse_line

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    series TEXT NOT NULL,
    device TEXT,
    zone TEXT,
    field TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value,
    PRIMARY KEY (measurement, series, field, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_device ON points (measurement, field, device, ts);
"""


def _series_key(tags: dict[str, str]) -> str:
    return _series_json(tuple(sorted(tags.items())))


@lru_cache(maxsize=65536)
def _series_json(items: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(items), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One value read back from the SQLite store."""

    ts_ms: int
    value: Value
    tags: dict[str, str]


class SqliteSink:
    """Sink writing to a SQLite file; thread-safe (one connection guarded by a lock)."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0, name: str = "sqlite") -> None:
        self.name = name
        self.path = Path(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteSink(path={str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError(False, None, f"{self.name}: sink is closed")
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path, timeout=self._timeout, check_same_thread=False, isolation_level=None
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(True, None, f"{self.name}: cannot open {self.path}: {exc}") from None
            self._db = db
        return self._db

    def ensure_ready(self) -> None:
        with self._lock:
            self._conn()

    def write(self, body: bytes, count: int) -> None:
        rows: list[tuple[Any, ...]] = []
        rejected: list[bytes] = []
        detail = ""
        lines = [ln for ln in body.split(b"\n") if ln]
        for line in lines:
            try:
                p = parse_line(line)
            except (LineProtocolError, UnicodeDecodeError) as exc:
                rejected.append(line)
                detail = detail or str(exc)
                continue
            if p.ts_ms is None:
                rejected.append(line)
                detail = detail or "line without timestamp"
                continue
            series = _series_key(p.tags)
            dev, zone = p.tags.get("device"), p.tags.get("zone")
            for f, v in p.fields.items():
                rows.append((p.measurement, series, dev, zone, f, p.ts_ms, v))
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?)", rows)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                # locked, busy, disk full, I/O: may work later
                raise StorageError(True, None, f"{self.name}: {type(exc).__name__}: {exc}") from None
        if rejected:
            raise PartialWriteError(None, f"{self.name}: {detail}", rejected, len(lines) - len(rejected))

    # -- queries (demo summary, tests) ----------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(True, None, f"{self.name}: query failed: {exc}") from None

    def query_counts(self) -> dict[str, int]:
        """Points (distinct series and timestamp) per measurement."""
        rows = self._read(
            "SELECT measurement, COUNT(*) FROM "
            "(SELECT DISTINCT measurement, series, ts FROM points) GROUP BY measurement"
        )
        return {str(m): int(n) for m, n in rows}

    def count(self, measurement: str) -> int:
        """Points (distinct series and timestamp) of one measurement."""
        rows = self._read(
            "SELECT COUNT(*) FROM (SELECT DISTINCT series, ts FROM points WHERE measurement = ?)",
            (measurement,),
        )
        return int(rows[0][0])

    def select(
        self, measurement: str, field: str, device: str | None = None, since: int | None = None
    ) -> list[StoredPoint]:
        """Values of one field, oldest first; ``since`` is an epoch in milliseconds (inclusive)."""
        sql = "SELECT ts, value, series FROM points WHERE measurement = ? AND field = ?"
        params: list[Any] = [measurement, field]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        if since is not None:
            sql += " AND ts >= ?"
            params.append(int(since))
        sql += " ORDER BY ts, series"
        return [StoredPoint(int(ts), v, json.loads(s)) for ts, v, s in self._read(sql, tuple(params))]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
