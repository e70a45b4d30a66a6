"""The durable alarm list: alarms, their journal and the maintenance windows, in one SQLite file.

WAL mode with ``synchronous=NORMAL``: every transition is its own committed transaction, which
lands in the WAL file before ``commit`` returns. A killed process (SIGKILL, OOM) loses nothing
that was committed: the WAL is in the operating system's page cache and is replayed at the next
open. Only a power loss or a kernel crash can lose the last transactions (``synchronous=FULL``
would fsync at every commit: a disk round-trip per alarm transition, for a failure the data
directory's disk does not survive anyway without a battery-backed cache).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from supervisor.walstore import WalStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, occurrence INTEGER NOT NULL, source TEXT NOT NULL,
    kind TEXT NOT NULL, severity TEXT NOT NULL, element TEXT NOT NULL, state TEXT NOT NULL,
    devices TEXT NOT NULL, device_count INTEGER NOT NULL, services TEXT NOT NULL, zones TEXT NOT NULL,
    lon REAL, lat REAL, text TEXT NOT NULL, raised_at REAL NOT NULL, updated_at REAL NOT NULL,
    acked_at REAL, acked_by TEXT, cleared_at REAL, clear_reason TEXT,
    shelved_until REAL, shelved_reason TEXT, shelved_by TEXT, in_maintenance TEXT,
    flap_count INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL DEFAULT 'inferred'
);
CREATE INDEX IF NOT EXISTS alarms_key ON alarms (key, occurrence);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state, raised_at);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id TEXT NOT NULL, ts REAL NOT NULL,
    action TEXT NOT NULL, user TEXT, detail TEXT
);
CREATE INDEX IF NOT EXISTS journal_alarm ON journal (alarm_id, seq);
CREATE TABLE IF NOT EXISTS maintenance (
    id TEXT PRIMARY KEY, element TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL
);
"""

_COLUMNS = ("id", "key", "occurrence", "source", "kind", "severity", "element", "state", "devices",
            "device_count", "services", "zones", "lon", "lat", "text", "raised_at", "updated_at", "acked_at",
            "acked_by", "cleared_at", "clear_reason", "shelved_until", "shelved_reason", "shelved_by",
            "in_maintenance", "flap_count", "evidence")
_JSON_COLUMNS = frozenset({"devices", "services", "zones"})


@dataclass(slots=True)
class AlarmRecord:
    """One alarm of any source, as stored. ``key`` names its cause (``root_cause:sw-z01``,
    ``rule:leak:meter-7``...); the same cause active again after a restart is the same record."""

    id: str
    key: str
    occurrence: int
    source: str  # network | rule | command | supervisor
    kind: str
    severity: str
    element: str
    state: str  # raised | acknowledged | cleared
    devices: tuple[str, ...]
    device_count: int
    services: tuple[str, ...]
    zones: tuple[str, ...]
    lon: float | None
    lat: float | None
    text: str
    raised_at: float
    updated_at: float
    acked_at: float | None = None
    acked_by: str | None = None
    cleared_at: float | None = None
    clear_reason: str | None = None
    shelved_until: float | None = None
    shelved_reason: str | None = None
    shelved_by: str | None = None
    in_maintenance: str | None = None  # the maintenance window's id
    flap_count: int = 0  # times it came back within the flap window after clearing (the same alarm)
    comments: list[dict[str, Any]] = field(default_factory=list)
    evidence: str = "inferred"  # network root causes: "observed" (SNMP saw the element down) or "inferred"

    @property
    def active(self) -> bool:
        return self.state != "cleared"

    def shelved(self, now: float) -> bool:
        return self.shelved_until is not None and self.shelved_until > now

    def as_dict(self) -> dict[str, Any]:
        out = {c: getattr(self, c) for c in _COLUMNS if c not in ("key", "lon", "lat")}
        out["devices"] = list(self.devices)
        out["services"] = list(self.services)
        out["zones"] = list(self.zones)
        out["position"] = None if self.lon is None or self.lat is None else [self.lon, self.lat]
        out["comments"] = list(self.comments)
        return out

    def row(self) -> tuple[Any, ...]:
        return tuple(orjson.dumps(list(getattr(self, c))).decode() if c in _JSON_COLUMNS else getattr(self, c)
                     for c in _COLUMNS)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: str
    element: str
    start: float
    end: float
    reason: str
    created_by: str
    created_at: float

    def covers(self, now: float) -> bool:
        return self.start <= now < self.end

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "element": self.element, "start": self.start, "end": self.end,
                "reason": self.reason, "created_by": self.created_by, "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class AlarmQuery:
    """Filters of the alarm list; ``None`` means any. ``since``/``until`` bound ``raised_at``."""

    state: str | None = None  # raised | acknowledged | cleared | active | shelved
    kind: str | None = None
    severity: str | None = None
    service: str | None = None
    zone: str | None = None
    element: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, now: float) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.state == "active":
            clauses.append("state != 'cleared'")
        elif self.state == "shelved":
            clauses.append("state != 'cleared' AND shelved_until > ?")
            args.append(now)
        elif self.state is not None:
            clauses.append("state = ?")
            args.append(self.state)
        for col in ("kind", "severity", "element"):
            value = getattr(self, col)
            if value is not None:
                clauses.append(f"{col} = ?")
                args.append(value)
        for col, value in (("services", self.service), ("zones", self.zone)):
            if value is not None:
                clauses.append(f"EXISTS (SELECT 1 FROM json_each(alarms.{col}) WHERE value = ?)")  # noqa: S608 (col: ours)
                args.append(value)
        if self.since is not None:
            clauses.append("raised_at >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("raised_at <= ?")
            args.append(self.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class AlarmStore:
    """The SQLite file; every method is one transaction, safe from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wal = WalStore(path, SCHEMA, named_rows=True)
        with self._wal.tx() as db:  # a file from before the evidence column (issue 14)
            cols = {r[1] for r in db.execute("PRAGMA table_info(alarms)").fetchall()}
            if "evidence" not in cols:
                db.execute("ALTER TABLE alarms ADD COLUMN evidence TEXT NOT NULL DEFAULT 'inferred'")

    def close(self) -> None:
        self._wal.close()

    # -- alarms -----------------------------------------------------------------------------------
    def save(self, alarm: AlarmRecord, action: str, ts: float, user: str | None = None,
             detail: str | None = None) -> None:
        """Write the alarm as it is now and one journal entry, in one transaction."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._wal.tx() as db:
            db.execute(f"INSERT OR REPLACE INTO alarms ({', '.join(_COLUMNS)}) "  # noqa: S608 (constant names)
                       f"VALUES ({placeholders})", alarm.row())
            db.execute("INSERT INTO journal (alarm_id, ts, action, user, detail) VALUES (?, ?, ?, ?, ?)",
                       (alarm.id, ts, action, user, detail))

    def next_occurrence(self, key: str) -> int:
        with self._wal.read() as db:
            row = db.execute("SELECT MAX(occurrence) FROM alarms WHERE key = ?", (key,)).fetchone()
        return int(row[0] or 0) + 1

    def active(self) -> list[AlarmRecord]:
        return self._select(" WHERE state != 'cleared'", [], "raised_at, id", None, 0)

    def get(self, alarm_id: str) -> AlarmRecord | None:
        found = self._select(" WHERE id = ?", [alarm_id], "id", 1, 0)
        if not found:
            return None
        alarm = found[0]
        alarm.comments = [e for e in self.journal(alarm_id) if e["action"] == "comment"]
        return alarm

    def query(self, q: AlarmQuery, now: float, limit: int, offset: int) -> tuple[int, list[AlarmRecord]]:
        """(matches, the page newest first)."""
        where, args = q.where(now)
        with self._wal.read() as db:
            # the WHERE clause is built of constant names, every value is a parameter
            total = int(db.execute(f"SELECT COUNT(*) FROM alarms{where}", args).fetchone()[0])  # noqa: S608
        return total, self._select(where, args, "raised_at DESC, id DESC", limit, offset)

    def _select(self, where: str, args: Sequence[Any], order: str, limit: int | None,
                offset: int) -> list[AlarmRecord]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM alarms{where} ORDER BY {order}"  # noqa: S608 (constant names)
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self._wal.read() as db:
            rows = db.execute(sql, list(args)).fetchall()
        return [_record(r) for r in rows]

    def journal(self, alarm_id: str) -> list[dict[str, Any]]:
        with self._wal.read() as db:
            rows = db.execute("SELECT ts, action, user, detail FROM journal WHERE alarm_id = ? ORDER BY seq",
                              (alarm_id,)).fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._wal.read() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM alarms GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # -- maintenance ------------------------------------------------------------------------------
    def add_window(self, w: MaintenanceWindow) -> None:
        with self._wal.tx() as db:
            db.execute("INSERT INTO maintenance (id, element, start, end, reason, created_by, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (w.id, w.element, w.start, w.end, w.reason, w.created_by, w.created_at))

    def remove_window(self, window_id: str) -> bool:
        with self._wal.tx() as db:
            return db.execute("DELETE FROM maintenance WHERE id = ?", (window_id,)).rowcount > 0

    def windows(self) -> list[MaintenanceWindow]:
        with self._wal.read() as db:
            rows = db.execute("SELECT id, element, start, end, reason, created_by, created_at "
                                    "FROM maintenance ORDER BY start, id").fetchall()
        return [MaintenanceWindow(**dict(r)) for r in rows]


def _record(row: sqlite3.Row) -> AlarmRecord:
    data = dict(row)
    for c in _JSON_COLUMNS:
        data[c] = tuple(orjson.loads(data[c]))
    return AlarmRecord(**data)
